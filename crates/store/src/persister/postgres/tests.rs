//! Unit tests of the PostgreSQL back end's pure parts: channels, cell encoding and decoding.

use bytes::BytesMut;
use tokio_postgres::types::{IsNull, ToSql, Type};

use super::session::{Kind, Param, channel, from_json};
use crate::cell::Cell;

#[test]
fn channels_are_short_lowercase_and_differ_by_schema() {
    let a = channel("public", "Pets & Owners: a very long table name indeed");
    assert!(a.len() <= 63, "{a}");
    assert!(a.starts_with("cairn_store_pets___owners__a_very_lo_"), "{a}");
    assert!(a.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'));
    assert_ne!(channel("public", "pets"), channel("other", "pets"));
    assert_eq!(channel("public", "pets"), channel("public", "pets"));
}

#[test]
fn text_columns_read_json_cells_and_plain_strings() {
    let read = |v: serde_json::Value, kind| from_json("t", "c", v, kind, false).unwrap();
    assert_eq!(read("\"dog\"".into(), Kind::Text), Some(Cell::from("dog")));
    assert_eq!(read("dog".into(), Kind::Text), Some(Cell::from("dog")));
    assert_eq!(read("4".into(), Kind::Text), Some(Cell::from(4)));
    assert_eq!(read("true".into(), Kind::Text), Some(Cell::from(true)));
    assert_eq!(read("[1]".into(), Kind::Text), Some(Cell::from("[1]")));
    assert_eq!(read(serde_json::json!(4.5), Kind::Other), Some(Cell::from(4.5)));
    assert_eq!(read(serde_json::Value::Null, Kind::Text), None);
    assert_eq!(from_json("t", "c", "4".into(), Kind::Text, true).unwrap(), Some(Cell::from("4")));
    let code = |v: serde_json::Value, kind| from_json("t", "c", v, kind, false).unwrap_err().code();
    assert_eq!(code(serde_json::json!({"a": 1}), Kind::Other), "store.unsupported_sql_value");
    assert_eq!(code("\\x00".into(), Kind::Bytes), "store.unsupported_sql_value");
}

#[test]
fn parameters_are_json_for_text_columns_and_plain_otherwise() {
    let text = |cell: Cell, raw, ty: Type| {
        let mut out = BytesMut::new();
        let null = Param { cell: &cell, raw }.to_sql(&ty, &mut out).unwrap();
        (matches!(null, IsNull::Yes), String::from_utf8(out.to_vec()).unwrap())
    };
    assert_eq!(text(Cell::from("dog"), false, Type::TEXT), (false, "\"dog\"".to_owned()));
    assert_eq!(text(Cell::from("dog"), true, Type::TEXT), (false, "dog".to_owned()));
    assert_eq!(text(Cell::from(4), false, Type::INT4), (false, "4".to_owned()));
    assert_eq!(text(Cell::from(2.5), false, Type::JSONB), (false, "2.5".to_owned()));
    assert_eq!(text(Cell::from(true), false, Type::BOOL), (false, "true".to_owned()));
    assert_eq!(text(Cell::Null, false, Type::TEXT), (true, String::new()));
}
