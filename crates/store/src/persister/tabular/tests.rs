//! Planning and rendering, free of any database; a PostgreSQL-like dialect shows that only the
//! dialect differs between back ends.

use std::collections::BTreeMap;

use super::*;
use crate::persister::database::{Dialect, render};

const POSTGRES_LIKE: Dialect = Dialect {
    column_type: " text",
    placeholder: |n| format!("${n}"),
    json_array_elements: |p| format!("SELECT jsonb_array_elements_text({p}::jsonb)"),
};

fn content(json: &str) -> Content {
    Content::from_json(json).unwrap()
}

/// JSON with each `"D"` made the deletion marker.
fn deleted_marks(json: &str) -> String {
    json.replace(r#""D""#, &format!("\"{}\"", crate::content::DELETED))
}

fn config() -> TabularConfig {
    TabularConfig::new().table("pets", "pets").values(ValuesMapping::new("vals"))
}

#[test]
fn a_whole_save_into_an_empty_database_creates_upserts_and_prunes() {
    let mut schema = DbSchema::new();
    let ops = config().plan_save(&mut schema, Some(&content(r#"[{"pets":{"fido":{"legs":4}}},{"open":true}]"#)), None);
    let sql: Vec<String> = ops.iter().map(|op| render(op, &POSTGRES_LIKE).0).collect();
    assert_eq!(
        sql,
        [
            r#"CREATE TABLE "pets"("_id" text PRIMARY KEY,"legs" text)"#,
            r#"INSERT INTO "pets"("_id","legs")VALUES($1,$2)ON CONFLICT("_id")DO UPDATE SET "legs"=excluded."legs""#,
            r#"DELETE FROM "pets" WHERE "_id" NOT IN(SELECT jsonb_array_elements_text($1::jsonb))"#,
            r#"CREATE TABLE "vals"("_id" text PRIMARY KEY,"open" text)"#,
            r#"INSERT INTO "vals"("_id","open")VALUES($1,$2)ON CONFLICT("_id")DO UPDATE SET "open"=excluded."open""#,
            r#"DELETE FROM "vals" WHERE "_id" NOT IN(SELECT jsonb_array_elements_text($1::jsonb))"#,
        ]
    );
    assert_eq!(render(&ops[2], &POSTGRES_LIKE).1, [Cell::from(r#"["fido"]"#)]);
    assert_eq!(schema["pets"].len(), 2);
}

#[test]
fn a_save_of_changes_touches_only_changed_rows_of_mapped_tables() {
    let mut schema: DbSchema = BTreeMap::from([("pets".to_owned(), ["_id", "legs"].map(String::from).into())]);
    let changes = Changes::from_json(&deleted_marks(
        r#"[{"pets":{"fido":{"legs":3,"tail":"D"},"felix":"D"},"unmapped":{"x":{"y":1}}},{},1]"#,
    ))
    .unwrap();
    let ops = config().plan_save(&mut schema, None, Some(&changes));
    assert_eq!(
        ops,
        [
            Op::AddColumn { table: "pets".into(), column: "tail".into() },
            Op::DeleteRow { table: "pets".into(), id_column: "_id".into(), id: "felix".into() },
            Op::Upsert {
                table: "pets".into(),
                id_column: "_id".into(),
                id: "fido".into(),
                cells: vec![("legs".into(), Some(Cell::from(3))), ("tail".into(), None)],
            },
        ]
    );
    let deleted = Changes::from_json(&deleted_marks(r#"[{"pets":"D"},{},1]"#)).unwrap();
    assert_eq!(config().plan_save(&mut schema, None, Some(&deleted)), [Op::DeleteAll { table: "pets".into() }]);
    let mut empty = DbSchema::new();
    assert!(config().plan_save(&mut empty, None, Some(&deleted)).is_empty(), "nothing to delete in a missing table");
}

#[test]
fn loads_read_existing_mapped_tables_and_empty_storage_is_none() {
    let config = config();
    let schema: DbSchema = BTreeMap::from([
        ("pets".to_owned(), ["_id", "legs"].map(String::from).into()),
        ("vals".to_owned(), ["id", "open"].map(String::from).into()),
    ]);
    let sources = config.load_sources(&schema);
    assert_eq!(sources.len(), 1, "a values table without its row id column is not read");
    assert_eq!(config.assemble(vec![(sources[0].clone(), Table::new())]), None);
    let row = row_from_columns("_id", vec![("_id".into(), Some(Cell::from(7))), ("legs".into(), Some(Cell::from(4)))]);
    let table: Table = row.into_iter().collect();
    let content = config.assemble(vec![(sources[0].clone(), table)]).unwrap();
    assert_eq!(content.to_json(), r#"[{"pets":{"7":{"legs":4}}},{}]"#);
    assert_eq!(row_from_columns("_id", vec![("_id".into(), Some(Cell::from("x"))), ("legs".into(), None)]), None);
}
