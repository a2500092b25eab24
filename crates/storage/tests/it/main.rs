//! Conformance tests for `cairn-storage`.
fn main() {}
