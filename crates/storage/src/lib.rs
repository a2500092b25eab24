//! Cairn's storage engine: the private, transactional storage of one object.
//!
//! Each object is one SQLite file (WAL mode, bundled SQLite) holding an ordered KV table, the
//! object's own SQL tables and its alarm, all changed atomically together. This crate is
//! synchronous and has no async runtime: the `cairn-runtime` crate decides which thread owns
//! which object and when commits become durable.
//!
//! # Layout
//! - [`ObjectStorage`] (`object.rs`): open, KV, alarm, bookmarks, `delete_all`, commit.
//! - `sql.rs`: [`ObjectStorage::exec`], the SQL API; `sql_value.rs`: [`SqlValue`], [`Cursor`].
//! - `txn.rs`: explicit transactions ([`Transaction`]) as savepoints.
//! - `authorizer.rs`: what user SQL may do; `limits.rs`: [`Limits`]; `list.rs`: [`ListOptions`].
//! - `changes.rs`: the WAL frames of each commit; `image.rs`: whole-file images (history bases,
//!   restores and forks); `import.rs`: checking a SQLite file and making it an image to import.
//! - `layout.rs`: where an object's file lives in a data directory.
//! - `dump.rs`: SQL dumps of the user tables ([`ObjectStorage::dump_sql`]) and scripts
//!   ([`ObjectStorage::exec_script`]).
//!
//! # Example
//! ```
//! use cairn_storage::{ObjectStorage, OpenOptions, ListOptions};
//! let dir = tempfile::tempdir()?;
//! let mut obj = ObjectStorage::open(&dir.path().join("room.db"), &OpenOptions::default())?;
//! obj.event(|s| {
//!     s.put("user:1", &serde_json::json!({"name": "ada"}))?;
//!     s.exec("CREATE TABLE t(x)", &[])?;
//!     Ok::<_, cairn_storage::Error>(())
//! })?;
//! assert_eq!(obj.list(&ListOptions::new().prefix("user:"))?.len(), 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod alarms;
mod authorizer;
mod bookmark;
pub mod changes;
mod clock;
mod dump;
mod error;
pub mod image;
pub mod import;
pub mod layout;
mod limits;
mod list;
mod object;
mod sql;
mod sql_value;
mod txn;
mod value;

pub use alarms::MAX_ALARM_NAME_BYTES;
pub use bookmark::{Bookmark, InvalidBookmark};
pub use clock::{Clock, ManualClock, SystemClock};
pub use dump::{DumpOptions, split_statements};
pub use error::{Error, Result};
pub use limits::Limits;
pub use list::{ListOptions, prefix_successor};
pub use object::{CommitInfo, FORMAT_VERSION, ObjectStorage, OpenOptions, Synchronous};
pub use sql_value::{Cursor, Row, SqlValue};
pub use txn::Transaction;
pub use value::Value;
