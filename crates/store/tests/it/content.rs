//! Content and changes in TinyBase's JSON shapes.

use cairn_store::{Cell, Changes, Content, DELETED, Store};
use serde_json::{Value, json};

const PETS: &str = r#"[{"pets":{"fido":{"species":"dog","legs":4}}},{"open":true}]"#;

#[test]
fn content_round_trips_through_tinybases_json() {
    let store = Store::new();
    store.set_json(PETS).unwrap();
    assert_eq!(store.cell("pets", "fido", "legs"), Some(Cell::Number(4.0)));
    let out: Value = serde_json::from_str(&store.json()).unwrap();
    let original: Value = serde_json::from_str(PETS).unwrap();
    assert_eq!(out, original);
    assert_eq!(store.json(), r#"[{"pets":{"fido":{"legs":4,"species":"dog"}}},{"open":true}]"#, "ids sorted");

    store.set_json(r#"[{"t":{"r":{"half":1.5,"big":1e300,"neg":-2,"s":"\u00e9\"","n":null,"no":false}}},{}]"#).unwrap();
    let row = store.row("t", "r");
    assert_eq!(row["half"], Cell::Number(1.5));
    assert_eq!(row["s"], Cell::from("é\""));
    assert_eq!(row["n"], Cell::Null);
    // Large numbers are written as JavaScript writes them.
    assert_eq!(store.json(), r#"[{"t":{"r":{"big":1e+300,"half":1.5,"n":null,"neg":-2,"no":false,"s":"é\""}}},{}]"#);
    assert!(!store.has_values(), "empty values in content delete them");

    let content = store.content();
    assert_eq!(Content::from_json(&content.to_json()).unwrap(), content);
    assert_eq!(serde_json::to_value(&content).unwrap(), serde_json::from_str::<Value>(&content.to_json()).unwrap());
}

#[test]
fn json_of_another_shape_is_refused_and_the_store_untouched() {
    let store = Store::new();
    store.set_json(PETS).unwrap();
    for bad in [
        "",
        "not json",
        "{}",
        "[]",
        r#"[{}]"#,
        r#"[{},{},{}]"#,
        r#"[{"pets":[]},{}]"#,
        r#"[{"pets":{"fido":{"legs":[4]}}},{}]"#,
        r#"[{"pets":{"fido":{"legs":{"n":4}}}},{}]"#,
        r#"[{"pets":{"fido":4}},{}]"#,
        r#"[{},{"open":[true]}]"#,
    ] {
        let error = store.set_json(bad).unwrap_err();
        assert_eq!(error.code(), "store.invalid_json", "{bad}");
    }
    assert_eq!(store.content(), Content::from_json(PETS).unwrap());
}

#[test]
fn setting_content_follows_tinybases_rules() {
    let store = Store::new();
    store.set_json(PETS).unwrap();
    // Tables that validate to nothing are ignored, as TinyBase ignores them...
    store.set_json(r#"[{"pets":{"fido":{}}},{"open":false}]"#).unwrap();
    assert!(store.has_row("pets", "fido"));
    assert_eq!(store.value("open"), Some(Cell::from(false)));
    // ...while empty tables delete them all.
    store.set_json(r#"[{},{"open":false}]"#).unwrap();
    assert!(!store.has_tables());
}

#[test]
fn changes_read_and_write_tinybases_shape_with_deletions_marked() {
    let json = json!([
        {"pets": {"fido": {"legs": 3, "color": DELETED, "owner": null}, "felix": DELETED}, "zoo": DELETED},
        {"open": DELETED, "employees": 4},
        1
    ]);
    let changes: Changes = serde_json::from_value(json.clone()).unwrap();
    let pets = changes.tables["pets"].as_ref().unwrap();
    assert_eq!(pets["felix"], None);
    let fido = pets["fido"].as_ref().unwrap();
    assert_eq!(fido["color"], None, "the marker is a deletion");
    assert_eq!(fido["owner"], Some(Cell::Null), "null is a null cell");
    assert_eq!(changes.tables["zoo"], None);
    assert_eq!(changes.values["open"], None);
    assert_eq!(serde_json::to_value(&changes).unwrap(), json);
    assert_eq!(Changes::from_json(&changes.to_json()).unwrap(), changes);
    // The trailing 1 may be left out; anything else is refused.
    assert!(Changes::from_json(r#"[{},{}]"#).is_ok());
    assert!(Changes::from_json(r#"[{},{},2]"#).is_err());
    assert!(Changes::from_json(r#"[{"pets":{"fido":{"legs":[1]}}},{},1]"#).is_err());

    let store = Store::new();
    store.set_json(r#"[{"pets":{"fido":{"legs":4,"color":"brown"},"felix":{"legs":4}},"zoo":{"leo":{"legs":4}}},{"open":true}]"#)
        .unwrap();
    store.apply_changes(changes);
    assert_eq!(store.json(), r#"[{"pets":{"fido":{"legs":3,"owner":null}}},{"employees":4}]"#);
}

#[test]
fn changes_between_two_contents_are_what_turns_one_into_the_other() {
    let old = Content::from_json(
        r#"[{"pets":{"fido":{"legs":4,"color":"brown"},"felix":{"legs":4}},"zoo":{"leo":{"legs":4}}},{"a":1}]"#,
    )
    .unwrap();
    let new = Content::from_json(r#"[{"pets":{"fido":{"legs":3},"rex":{"legs":4}},"farm":{"ox":{"legs":4}}},{"b":2}]"#)
        .unwrap();
    let changes = Changes::between(&old, &new);
    let expected = r#"[{"farm":{"ox":{"legs":4}},"pets":{"felix":"D","fido":{"color":"D","legs":3},"rex":{"legs":4}},"zoo":"D"},{"a":"D","b":2},1]"#;
    assert_eq!(changes.to_json(), expected.replace("\"D\"", &format!("\"{DELETED}\"")));
    assert!(Changes::between(&new, &new).is_empty());

    let store = Store::new();
    store.set_content(old);
    store.apply_changes(changes);
    assert_eq!(store.content(), new);
}
