//! The embedded flavour: the object's storage through [`ObjectRef`], in this process. A load is
//! one event that only reads; a save is one event (one commit, atomic).

use cairn_runtime::ObjectRef;
use cairn_storage::{ListOptions, ObjectStorage, Value};

use super::layout::{self, HAS_STORE, Listed, Plan, Write};
use crate::content::{Changes, Content};
use crate::error::Error;

fn storage_error(error: cairn_storage::Error) -> Error {
    Error::CairnRuntime(error.into())
}

fn list(storage: &mut ObjectStorage, prefix: &str) -> Result<Vec<Listed>, Error> {
    let entries = storage.list(&ListOptions::new().prefix(prefix)).map_err(storage_error)?;
    Ok(entries
        .into_iter()
        .map(|(key, value)| match value {
            Value::Json(json) => (key, Some(json)),
            Value::Bytes(_) => (key, None),
        })
        .collect())
}

/// Reads every entry under `prefix`; with the sequence number of the commit read.
pub(super) async fn load(object: &ObjectRef, prefix: &str) -> Result<(u64, Vec<Listed>), Error> {
    let prefix = prefix.to_owned();
    object
        .run(move |storage| {
            let seq = storage.committed_seq();
            Ok((seq, list(storage, &prefix)?))
        })
        .await
}

/// Deletes every key under `prefix`, in batches the storage accepts.
fn delete_prefix(storage: &mut ObjectStorage, prefix: &str) -> Result<(), Error> {
    let keys: Vec<String> = list(storage, prefix)?.into_iter().map(|(key, _)| key).collect();
    for batch in keys.chunks(storage.limits().max_batch_keys.max(1)) {
        storage.delete_many(batch).map_err(storage_error)?;
    }
    Ok(())
}

fn apply(storage: &mut ObjectStorage, plan: &Plan) -> Result<(), Error> {
    for write in &plan.writes {
        match write {
            Write::Put(key, value) => storage.put(key, value).map_err(storage_error)?,
            Write::Delete(key) => {
                storage.delete(key).map_err(storage_error)?;
            }
            Write::DeletePrefix(prefix) => delete_prefix(storage, prefix)?,
        }
    }
    Ok(())
}

/// Writes `changes`, or the whole `content` when there are none, and `hasStore`, in one event.
/// Returns the sequence number the object had before (the save is the next one) and the plan,
/// for what it refused.
pub(super) async fn save(
    object: &ObjectRef,
    prefix: &str,
    content: Option<Content>,
    changes: Option<Changes>,
) -> Result<(u64, Plan), Error> {
    let prefix = prefix.to_owned();
    object
        .run(move |storage| {
            let before = storage.committed_seq();
            let limits = storage.limits().clone();
            let plan = match (changes, content) {
                (Some(changes), _) => layout::plan_changes(&prefix, &changes, &limits),
                (None, content) => {
                    let existing = list(storage, &prefix)?;
                    layout::plan_whole(&prefix, &content.unwrap_or_default(), existing, &limits)
                }
            };
            apply(storage, &plan)?;
            // Always a write: the save is exactly one commit.
            storage.put(&format!("{prefix}{HAS_STORE}"), &1).map_err(storage_error)?;
            Ok((before, plan))
        })
        .await
}
