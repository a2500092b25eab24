//! Where objects live in a data directory, and which names are acceptable.
//!
//! `{data}/objects/{namespace}/{xx}/{file}.db`, where `xx` is the first byte of the SHA-256 of
//! the object name in hex (256 directories per namespace keep directories small) and `file`
//! is the name with every byte outside `[A-Za-z0-9_-]` percent-encoded, or `~` and the full
//! SHA-256 hex if that would be longer than 150 bytes. The mapping is a pure function of the
//! names, so an object is found without any lookup.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::{Error, Result};

/// Longest namespace name, in bytes.
pub const MAX_NAMESPACE_BYTES: usize = 64;
/// Longest object name, in bytes.
pub const MAX_OBJECT_NAME_BYTES: usize = 1024;

/// Checks a namespace name: 1 to 64 bytes of ASCII letters, digits, `_`, `-` and `.`, not
/// starting with `.`.
///
/// # Errors
/// [`Error::InvalidName`].
pub fn validate_namespace(ns: &str) -> Result<()> {
    let bad = |reason| Err(Error::InvalidName { what: "namespace", name: ns.chars().take(80).collect(), reason });
    if ns.is_empty() {
        return bad("it is empty");
    }
    if ns.len() > MAX_NAMESPACE_BYTES {
        return bad("it is longer than 64 bytes");
    }
    if ns.starts_with('.') || !ns.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.')) {
        return bad("only ASCII letters, digits, '_', '-' and '.' are allowed, not first '.'");
    }
    Ok(())
}

/// Checks an object name: 1 to 1024 bytes of UTF-8 without NUL.
///
/// # Errors
/// [`Error::InvalidName`].
pub fn validate_object_name(name: &str) -> Result<()> {
    let bad = |reason| Err(Error::InvalidName { what: "object", name: name.chars().take(80).collect(), reason });
    if name.is_empty() {
        return bad("it is empty");
    }
    if name.len() > MAX_OBJECT_NAME_BYTES {
        return bad("it is longer than 1024 bytes");
    }
    if name.contains('\0') {
        return bad("it contains a NUL character");
    }
    Ok(())
}

/// A stable 64-bit hash of an object's identity, used to pick its shard.
pub fn object_hash(ns: &str, name: &str) -> u64 {
    let mut h = Sha256::new();
    h.update(ns.as_bytes());
    h.update([0u8]);
    h.update(name.as_bytes());
    let d = h.finalize();
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[..8]);
    u64::from_le_bytes(b)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The directory holding a namespace's objects.
pub fn namespace_dir(data_dir: &Path, ns: &str) -> PathBuf {
    data_dir.join("objects").join(ns)
}

/// The file of object `name` in namespace `ns`. Names must have been validated.
pub fn object_path(data_dir: &Path, ns: &str, name: &str) -> PathBuf {
    let digest = Sha256::digest(name.as_bytes());
    let mut file = String::with_capacity(name.len() + 3);
    for &b in name.as_bytes() {
        if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' {
            file.push(char::from(b));
        } else {
            file.push_str(&format!("%{b:02X}"));
        }
    }
    if file.len() > 150 {
        file = format!("~{}", hex(&digest));
    }
    file.push_str(".db");
    namespace_dir(data_dir, ns).join(hex(&digest[..1])).join(file)
}
