//! Cairn's continuous backup and restore.
//!
//! A backup is snapshots of the object files plus the commit log shipped as it becomes durable,
//! to any number of targets at once: a local directory or an S3-compatible store (through the
//! `object_store` crate). [`Backup::start`] runs one shipping task per target; [`restore`]
//! rebuilds a data directory from a target, optionally as of a time. The layout at the target is
//! described in [`mod@format`]; why it is built this way is in `docs/decisions/0009-continuous-backup.md`.
//!
//! ```no_run
//! # async fn demo(rt: cairn_runtime::Runtime) -> Result<(), cairn_backup::Error> {
//! use cairn_backup::{Backup, BackupConfig, TargetConfig};
//! let config = BackupConfig { targets: vec![TargetConfig::from_url("/var/backups/cairn")], ..BackupConfig::default() };
//! let backup = Backup::start(rt, config)?;
//! // ... serve ...
//! backup.shutdown().await; // one last pass
//! # Ok(()) }
//! ```

mod error;
pub mod format;
mod lag;
mod restore;
mod shipper;
mod target;

pub use error::{Error, Result};
pub use lag::LagHistogram;
pub use restore::{Progress, RestoreReport, restore};
pub use shipper::{Backup, BackupConfig, SnapshotSummary, TargetStatus};
pub use target::{Target, TargetConfig};

/// Reads a target's state and snapshots without changing anything: what `cairn backup status`
/// shows for a target the server is not running.
///
/// # Errors
/// Target errors, or [`Error::Corrupt`] for unreadable state.
pub async fn inspect(target: &Target) -> Result<(Option<format::BackupState>, Vec<format::SnapshotManifest>)> {
    let state = match target.get(format::STATE_KEY).await? {
        Some(b) => Some(
            serde_json::from_slice(&b)
                .map_err(|e| Error::Corrupt(format!("{} is unreadable: {e}", format::STATE_KEY)))?,
        ),
        None => None,
    };
    Ok((state, shipper::list_snapshots(target).await?))
}
