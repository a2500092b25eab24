//! Room kinds that `cairn serve` offers without code, configurable per party.

pub mod chat;
pub mod tinybase;
pub mod yjs;
