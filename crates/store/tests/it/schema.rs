//! Schemas and defaults, applied as TinyBase applies them.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use cairn_store::{Cell, CellSchema, CellType, Store, TablesSchema, ValuesSchema};

fn pets_schema() -> TablesSchema {
    serde_json::from_str(
        r#"{"pets":{
            "species":{"type":"string"},
            "legs":{"type":"number","default":4},
            "sold":{"type":"boolean","default":false},
            "owner":{"type":"string","allowNull":true,"default":null}
        }}"#,
    )
    .unwrap()
}

#[test]
fn a_schema_reads_and_writes_tinybases_json_shape() {
    let schema = pets_schema();
    let owner = &schema["pets"]["owner"];
    assert_eq!(owner, &CellSchema::new(CellType::String).nullable().with_default(Cell::Null));
    assert_eq!(schema["pets"]["species"].default, None);
    let json = serde_json::to_value(&schema).unwrap();
    assert_eq!(json["pets"]["owner"], serde_json::json!({"type": "string", "default": null, "allowNull": true}));
    assert_eq!(json["pets"]["species"], serde_json::json!({"type": "string"}));
    assert!(serde_json::from_str::<TablesSchema>(r#"{"pets":{"x":{"type":"date"}}}"#).is_err());
    assert!(serde_json::from_str::<TablesSchema>(r#"{"pets":{"x":{"type":"string","max":3}}}"#).is_err());
}

#[test]
fn rows_get_defaults_and_invalid_cells_are_defaulted_or_ignored() {
    let store = Store::new();
    store.set_tables_schema(pets_schema()).unwrap();

    store.set_row("pets", "fido", [("species", "dog")]);
    assert_eq!(store.json(), r#"[{"pets":{"fido":{"legs":4,"owner":null,"sold":false,"species":"dog"}}},{}]"#);

    store.set_cell("pets", "fido", "legs", "four");
    assert_eq!(store.cell("pets", "fido", "legs"), Some(Cell::from(4)), "wrong type: the default");
    store.set_cell("pets", "fido", "species", 7);
    assert_eq!(store.cell("pets", "fido", "species"), Some(Cell::from("dog")), "wrong type, no default: ignored");
    store.set_cell("pets", "fido", "species", Cell::Null);
    assert_eq!(store.cell("pets", "fido", "species"), Some(Cell::from("dog")), "null not allowed: ignored");
    store.set_cell("pets", "fido", "owner", "ada");
    store.set_cell("pets", "fido", "owner", Cell::Null);
    assert_eq!(store.cell("pets", "fido", "owner"), Some(Cell::Null), "null allowed");
    store.set_cell("pets", "fido", "color", "brown");
    store.set_cell("zoo", "leo", "species", "lion");
    assert!(
        !store.has_cell("pets", "fido", "color") && !store.has_table("zoo"),
        "unknown cells and tables are ignored"
    );

    store.set_cell("pets", "felix", "species", "cat");
    assert_eq!(store.row("pets", "felix").len(), 4, "a row created by a cell gets the defaults");
    store.set_partial_row("pets", "rex", [("sold", Cell::from(true)), ("legs", Cell::from("x"))]);
    assert_eq!(store.cell("pets", "rex", "legs"), Some(Cell::from(4)));
    assert_eq!(store.cell("pets", "rex", "sold"), Some(Cell::from(true)));

    store.set_cell("pets", "fido", "legs", 3);
    store.del_cell("pets", "fido", "legs");
    assert_eq!(store.cell("pets", "fido", "legs"), Some(Cell::from(4)), "a defaulted cell is reset, not deleted");
    store.force_del_cell("pets", "fido", "legs");
    assert!(!store.has_row("pets", "fido"), "forcing deletes the row, which would be invalid");
    store.del_cell("pets", "felix", "species");
    assert!(store.has_row("pets", "felix") && !store.has_cell("pets", "felix", "species"));
}

#[test]
fn setting_a_tables_schema_revalidates_the_data_in_one_transaction() {
    let store = Store::new();
    store.set_json(r#"[{"pets":{"fido":{"species":"dog","legs":"four","color":"brown"}},"zoo":{"leo":{"species":"lion"}}},{}]"#)
        .unwrap();
    let calls = Arc::new(Mutex::new(0));
    let c = calls.clone();
    store.add_tables_listener(move |_, _| *c.lock().unwrap() += 1);

    store.set_tables_schema(pets_schema()).unwrap();
    assert_eq!(store.json(), r#"[{"pets":{"fido":{"legs":4,"owner":null,"sold":false,"species":"dog"}}},{}]"#);
    assert_eq!(*calls.lock().unwrap(), 1);

    store.del_tables_schema();
    store.set_cell("zoo", "leo", "species", "lion");
    assert!(store.has_table("zoo"), "without a schema anything goes");
    assert_eq!(store.tables_schema(), None);
}

#[test]
fn values_schema_defaults_appear_at_once_as_in_tinybases_guide() {
    // TinyBase's "Using Schemas" guide.
    let store = Store::new();
    let schema: ValuesSchema =
        serde_json::from_str(r#"{"employees":{"type":"number"},"open":{"type":"boolean","default":false}}"#).unwrap();
    store.set_values_schema(schema).unwrap();
    assert_eq!(store.values(), BTreeMap::from([("open".to_owned(), Cell::from(false))]));
    store.set_values([("employees", Cell::from(3)), ("website", Cell::from("pets.com"))]);
    assert_eq!(store.json(), r#"[{},{"employees":3,"open":false}]"#);

    store.set_value("open", "yes");
    assert_eq!(store.value("open"), Some(Cell::from(false)));
    store.set_value("open", true);
    store.del_value("open");
    assert_eq!(store.value("open"), Some(Cell::from(false)), "deleting resets to the default");
    store.del_values();
    assert_eq!(store.json(), r#"[{},{"open":false}]"#);
    store.set_value("employees", Cell::Null);
    assert!(!store.has_value("employees"));
}

#[test]
fn invalid_schemas_are_refused_and_change_nothing() {
    let store = Store::new();
    store.set_cell("pets", "fido", "legs", "four");
    let bad_default: TablesSchema =
        serde_json::from_str(r#"{"pets":{"legs":{"type":"number","default":"4"}}}"#).unwrap();
    assert_eq!(store.set_tables_schema(bad_default).unwrap_err().code(), "store.schema_default_type");
    let null_default: TablesSchema =
        serde_json::from_str(r#"{"pets":{"legs":{"type":"number","default":null}}}"#).unwrap();
    assert_eq!(store.set_tables_schema(null_default).unwrap_err().code(), "store.schema_null_default");
    let empty_table: TablesSchema = serde_json::from_str(r#"{"pets":{}}"#).unwrap();
    assert_eq!(store.set_tables_schema(empty_table).unwrap_err().code(), "store.schema_empty_table");
    let bad_value: ValuesSchema = serde_json::from_str(r#"{"open":{"type":"boolean","default":1}}"#).unwrap();
    let error = store.set_values_schema(bad_value).unwrap_err();
    assert_eq!(error.to_string(), "the default of open in the schema is not a boolean");
    assert_eq!(store.tables_schema(), None);
    assert_eq!(store.cell("pets", "fido", "legs"), Some(Cell::from("four")));
}
