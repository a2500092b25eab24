//! A reactive in-memory store that saves itself: what TinyBase gives JavaScript applications,
//! for Rust ones.
//!
//! A [`Store`] holds tables of rows of cells plus key-values ("values"); cells and values are
//! strings, finite numbers, booleans or null ([`Cell`]). Optional schemas type them and give
//! defaults; invalid writes are ignored the way TinyBase ignores them. Writes are grouped in
//! transactions, and listeners on tables, a table, a row, a cell, values or a value are called
//! once per transaction, after it commits, with what changed. The store's JSON is TinyBase's,
//! `[tables, values]`, and its changes are TinyBase's `[changedTables, changedValues, 1]`.
//!
//! A [`Persister`] loads a store from, and saves it to, a storage back end, explicitly or
//! automatically, on tokio: a JSON file ([`FileStorage`]) or SQLite ([`SqliteStorage`], with the
//! whole store as JSON in one row, or store tables mapped to SQL tables). A back end is a small
//! [`Persist`] implementation.
//!
//! # Layout
//! - `cell.rs`: [`Cell`] and [`CellType`].
//! - `content.rs`: [`Content`], [`Changes`] and their JSON forms.
//! - `schema.rs`: [`CellSchema`], [`TablesSchema`], [`ValuesSchema`] and how they apply.
//! - `store/`: [`Store`] (`mod.rs`), [`Transaction`] (`transaction.rs`), the write rules
//!   (`state.rs`) and listeners (`listeners.rs`).
//! - `persister/`: [`Persister`] and the [`Persist`] trait (`mod.rs`), the persister's task
//!   (`actor.rs`), the back ends (`file.rs`, `sqlite.rs`), and what database back ends share
//!   (`database.rs`: modes, SQL rendering per dialect; `tabular.rs`: the mapping of store tables
//!   to SQL tables and the planning of loads and saves). A PostgreSQL back end would be a
//!   `postgres.rs` beside `sqlite.rs` with its own dialect; a Cairn-object back end, a
//!   [`Persist`] implementation over an object's storage.
//! - `error.rs`: [`Error`].
//!
//! # Example
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use cairn_store::{FileStorage, Persister, PersisterOptions, Store};
//!
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("pets.json");
//!
//! let store = Store::new();
//! store.set_json(r#"[{"pets":{"fido":{"species":"dog","legs":4}}},{"open":true}]"#)?;
//! let persister = Persister::new(&store, FileStorage::new(&path), PersisterOptions::default())?;
//! persister.save().await?;
//! assert_eq!(
//!     std::fs::read_to_string(&path)?,
//!     r#"[{"pets":{"fido":{"legs":4,"species":"dog"}}},{"open":true}]"#
//! );
//!
//! let copy = Store::new();
//! let loader = Persister::new(&copy, FileStorage::new(&path), PersisterOptions::default())?;
//! loader.load(None).await?;
//! assert_eq!(copy.content(), store.content());
//! # Ok(()) }
//! ```

mod cell;
mod content;
mod error;
mod persister;
mod schema;
mod store;

pub use cell::{Cell, CellType, Value};
pub use content::{
    Changes, Content, DELETED, Id, Row, RowChanges, Table, TableChanges, Tables, TablesChanges, Values, ValuesChanges,
};
pub use error::{Error, Result};
pub use persister::database::{DatabaseConfig, DatabaseMode, JsonConfig};
pub use persister::file::{FilePersister, FileStorage};
pub use persister::sqlite::{SqlitePersister, SqliteStorage};
pub use persister::tabular::{TableLoad, TableSave, TabularConfig, ValuesMapping};
pub use persister::{OnIgnoredError, OnSqlCommand, Persist, Persister, PersisterOptions, PersisterStats};
pub use schema::{CellSchema, TablesSchema, ValueSchema, ValuesSchema};
pub use store::{
    CellDiff, ListenerId, MAX_LISTENER_DEPTH, RowDiff, Store, TableDiff, TablesDiff, Transaction, ValueDiff, ValuesDiff,
};
