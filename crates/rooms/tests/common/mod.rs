//! Harness shared by the built-in room tests (`yjs.rs`, `tinybase.rs`): a one-shard runtime, a
//! host serving one party that hibernates as soon as it may, and waiting for hibernation.

use std::path::Path;
use std::time::Duration;

use cairn_rooms::{HostConfig, Room, RoomHost};
use cairn_runtime::Runtime;

/// Longest wait for anything in these tests.
pub(crate) const WAIT: Duration = Duration::from_secs(10);

pub(crate) fn open_runtime(dir: &Path) -> Runtime {
    Runtime::builder(dir).shards(1).open().unwrap()
}

/// A host serving `party` with rooms made by `make`, hibernating idle rooms at once.
pub(crate) fn host_of<R: Room>(rt: &Runtime, party: &str, make: impl Fn() -> R + Send + Sync + 'static) -> RoomHost {
    RoomHost::builder(rt.clone())
        .config(HostConfig { hibernate_after: Duration::ZERO, ..Default::default() })
        .room_with(party, move |_| make())
        .build()
        .unwrap()
}

/// Drops the room's instance (its sockets stay open). Retries while the last event's
/// completion is still finishing (it delivers output before it counts itself done).
pub(crate) async fn hibernate(host: &RoomHost) {
    tokio::time::timeout(WAIT, async {
        while host.hibernate_idle() == 0 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the room never became idle");
}
