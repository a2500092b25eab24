//! Integration suite for `cairn-rooms`: the room host driven through its public API, without
//! HTTP, over a real runtime in a temporary directory with a manual clock (no test sleeps).
//!
//! - `host.rs`: hooks, the output gate, failures and panics, HTTP requests, names and ids.
//! - `hibernation.rs`: dropping idle instances, waking them, sockets' tags, attachments and
//!   auto-response, and the limits of spec §6.
//! - `alarms.rs`: alarm delivery and retries (spec §5.2), named alarms, restarts.
//! - `chat.rs`: the built-in chat room.
//!
//! Run with `cargo nextest run -p cairn-rooms --test it`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod alarms;
mod chat;
mod hibernation;
mod host;
mod support;
