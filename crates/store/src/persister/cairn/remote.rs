//! The remote flavour: the object's storage over a Cairn server's HTTP API ([`ObjectClient`]). A
//! load is one listing (one event on the server); a save is one `transaction` request (one
//! atomic commit) per [`Limits::max_batch_keys`] operations, `hasStore` included in each.

use cairn_client::api::{Encoding, Operation, TransactionRequest, WireValue};
use cairn_client::{ListOptions, ObjectClient};
use cairn_storage::{Bookmark, Limits};

use super::layout::{HAS_STORE, Listed, Plan, Write};
use crate::error::Error;

/// The object's newest commit.
pub(super) async fn bookmark(object: &ObjectClient) -> Result<Bookmark, Error> {
    parse(&object.bookmark().await?)
}

pub(super) fn parse(bookmark: &str) -> Result<Bookmark, Error> {
    bookmark.parse().map_err(|error: cairn_storage::InvalidBookmark| Error::Backend(Box::new(error)))
}

/// Every entry under `prefix`, in one request.
pub(super) async fn list(object: &ObjectClient, prefix: &str) -> Result<Vec<Listed>, Error> {
    let options = ListOptions { prefix: (!prefix.is_empty()).then(|| prefix.to_owned()), ..ListOptions::default() };
    let entries = object.list(&options).await?;
    Ok(entries
        .into_iter()
        .map(|entry| match entry.value.encoding {
            Encoding::Json => (entry.key, Some(entry.value.value)),
            Encoding::Base64 => (entry.key, None),
        })
        .collect())
}

fn put(key: String, value: serde_json::Value) -> Operation {
    Operation::Put { key, value: WireValue { value, encoding: Encoding::Json } }
}

/// Applies `plan` (prefix deletions listed first), then `hasStore`, in as few transactions as
/// the batch limit allows, in order; returns how many were sent (each is one commit).
pub(super) async fn apply(object: &ObjectClient, prefix: &str, plan: &Plan, limits: &Limits) -> Result<u64, Error> {
    let mut operations = Vec::with_capacity(plan.writes.len());
    for write in &plan.writes {
        match write {
            Write::Put(key, value) => operations.push(put(key.clone(), value.clone())),
            Write::Delete(key) => operations.push(Operation::Delete { key: key.clone() }),
            Write::DeletePrefix(under) => {
                for (key, _) in list(object, under).await? {
                    operations.push(Operation::Delete { key });
                }
            }
        }
    }
    // Room for `hasStore` in each transaction.
    let size = limits.max_batch_keys.saturating_sub(1).max(1);
    let mut sent = 0;
    let mut chunks = operations.chunks(size).peekable();
    if chunks.peek().is_none() {
        object.transaction(&request(Vec::new(), prefix)).await?;
        return Ok(1);
    }
    for chunk in chunks {
        object.transaction(&request(chunk.to_vec(), prefix)).await?;
        sent += 1;
    }
    Ok(sent)
}

/// A transaction of `operations` that also marks the storage initialised: always a write.
fn request(mut operations: Vec<Operation>, prefix: &str) -> TransactionRequest {
    operations.push(put(format!("{prefix}{HAS_STORE}"), 1.into()));
    TransactionRequest { preconditions: Vec::new(), operations }
}
