//! Integration tests of the runtime: one test binary, modules per topic.

mod crash;
mod events;
mod history;
mod import;
