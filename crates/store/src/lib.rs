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
//! automatically, on tokio. A back end is a small [`Persist`] implementation; those here:
//! - a JSON file ([`FileStorage`]);
//! - SQLite ([`SqliteStorage`]) and PostgreSQL ([`PostgresStorage`], feature `postgres`, on by
//!   default), each with the whole store as JSON in one row or store tables mapped to SQL tables
//!   ([`DatabaseConfig`]); PostgreSQL hears other connections' changes through `LISTEN`/`NOTIFY`
//!   or, as a fallback, by polling ([`ChangeDetection`]);
//! - a Cairn object ([`CairnStorage`], feature `cairn`, on by default), in this process through
//!   the runtime or on a server through its HTTP API, in the storage layout of the `tinybase`
//!   room kind, so that TinyBase clients of that room see the store; it hears other writers'
//!   commits through the object's change notifications.
//!
//! # Layout
//! - `cell.rs`: [`Cell`] and [`CellType`].
//! - `content.rs`: [`Content`], [`Changes`] and their JSON forms.
//! - `schema.rs`: [`CellSchema`], [`TablesSchema`], [`ValuesSchema`] and how they apply.
//! - `store/`: [`Store`] (`mod.rs`), [`Transaction`] (`transaction.rs`), the write rules
//!   (`state.rs`) and listeners (`listeners.rs`).
//! - `persister/`: [`Persister`] and the [`Persist`] trait (`mod.rs`), the persister's task
//!   (`actor.rs`), the changes auto-save has yet to write (`pending.rs`), the back ends (`file.rs`, `sqlite.rs`, `postgres.rs` with `postgres/session.rs`
//!   for its connection, `cairn.rs` with `cairn/layout.rs` for the room layout and
//!   `cairn/embedded.rs`, `cairn/remote.rs` for its two flavours), and what database back ends
//!   share (`database.rs`: modes, SQL rendering per dialect; `tabular.rs`: the mapping of store
//!   tables to SQL tables and the planning of loads and saves).
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
#[cfg(feature = "cairn")]
pub use persister::cairn::{CairnPersister, CairnStorage};
pub use persister::database::{DatabaseConfig, DatabaseMode, JsonConfig};
pub use persister::file::{FilePersister, FileStorage};
#[cfg(feature = "postgres")]
pub use persister::postgres::{ChangeDetection, PostgresPersister, PostgresStorage};
pub use persister::sqlite::{SqlitePersister, SqliteStorage};
pub use persister::tabular::{TableLoad, TableSave, TabularConfig, ValuesMapping};
pub use persister::{OnIgnoredError, OnSqlCommand, Persist, Persister, PersisterOptions, PersisterStats};
pub use schema::{CellSchema, TablesSchema, ValueSchema, ValuesSchema};
pub use store::{
    CellDiff, ListenerId, MAX_LISTENER_DEPTH, RowDiff, Store, TableDiff, TablesDiff, Transaction, ValueDiff, ValuesDiff,
};
/// The PostgreSQL client the PostgreSQL back end uses, for its connection settings
/// ([`tokio_postgres::Config`]).
#[cfg(feature = "postgres")]
pub use tokio_postgres;
