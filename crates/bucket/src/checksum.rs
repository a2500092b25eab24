//! Digests of bodies: MD5 (always, it is the etag) plus the checksums R2 and S3 accept.

use md5::Digest as _;

use crate::{Error, Result};

/// A checksum algorithm. R2 accepts MD5 and the SHA family; S3 adds the CRCs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ChecksumAlgorithm {
    /// MD5 (128 bits).
    Md5,
    /// SHA-1 (160 bits).
    Sha1,
    /// SHA-256.
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
    /// CRC-32 (ISO-HDLC, as S3's `x-amz-checksum-crc32`).
    Crc32,
    /// CRC-32C (Castagnoli).
    Crc32c,
    /// CRC-64/NVME.
    Crc64Nvme,
}

impl ChecksumAlgorithm {
    /// Every algorithm.
    pub const ALL: [ChecksumAlgorithm; 8] = [
        ChecksumAlgorithm::Md5,
        ChecksumAlgorithm::Sha1,
        ChecksumAlgorithm::Sha256,
        ChecksumAlgorithm::Sha384,
        ChecksumAlgorithm::Sha512,
        ChecksumAlgorithm::Crc32,
        ChecksumAlgorithm::Crc32c,
        ChecksumAlgorithm::Crc64Nvme,
    ];

    /// The name R2 uses in `checksums` (`md5`, `sha256`, ...), also the stored name.
    pub fn key(self) -> &'static str {
        match self {
            ChecksumAlgorithm::Md5 => "md5",
            ChecksumAlgorithm::Sha1 => "sha1",
            ChecksumAlgorithm::Sha256 => "sha256",
            ChecksumAlgorithm::Sha384 => "sha384",
            ChecksumAlgorithm::Sha512 => "sha512",
            ChecksumAlgorithm::Crc32 => "crc32",
            ChecksumAlgorithm::Crc32c => "crc32c",
            ChecksumAlgorithm::Crc64Nvme => "crc64nvme",
        }
    }

    /// The algorithm stored under `key`.
    pub fn from_key(key: &str) -> Option<ChecksumAlgorithm> {
        Self::ALL.into_iter().find(|a| a.key() == key)
    }

    /// The name in error messages (`MD5`, `SHA-256`, `CRC32`, ...).
    pub fn display_name(self) -> &'static str {
        match self {
            ChecksumAlgorithm::Md5 => "MD5",
            ChecksumAlgorithm::Sha1 => "SHA-1",
            ChecksumAlgorithm::Sha256 => "SHA-256",
            ChecksumAlgorithm::Sha384 => "SHA-384",
            ChecksumAlgorithm::Sha512 => "SHA-512",
            ChecksumAlgorithm::Crc32 => "CRC32",
            ChecksumAlgorithm::Crc32c => "CRC32C",
            ChecksumAlgorithm::Crc64Nvme => "CRC64NVME",
        }
    }

    /// The digest's length in bytes.
    pub fn digest_len(self) -> usize {
        match self {
            ChecksumAlgorithm::Md5 => 16,
            ChecksumAlgorithm::Sha1 => 20,
            ChecksumAlgorithm::Sha256 => 32,
            ChecksumAlgorithm::Sha384 => 48,
            ChecksumAlgorithm::Sha512 => 64,
            ChecksumAlgorithm::Crc32 | ChecksumAlgorithm::Crc32c => 4,
            ChecksumAlgorithm::Crc64Nvme => 8,
        }
    }

    /// Parses a hex digest of this algorithm (R2's form; either case).
    ///
    /// # Errors
    /// [`Error::InvalidDigest`] for a wrong length or a non-hex character.
    pub fn parse_hex(self, hex: &str) -> Result<Vec<u8>> {
        let bad =
            || Error::InvalidDigest { alg: self.display_name(), expected_len: self.digest_len() * 2, len: hex.len() };
        if hex.len() != self.digest_len() * 2 {
            return Err(bad());
        }
        decode_hex(hex).ok_or_else(bad)
    }
}

/// Lowercase hex of `bytes`.
pub fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    s
}

/// Bytes of a hex string (either case), `None` if it is not hex.
pub fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    let digit = |c: u8| char::from(c).to_digit(16).and_then(|d| u8::try_from(d).ok());
    hex.as_bytes().chunks(2).map(|p| Some(digit(p[0])? << 4 | digit(p[1])?)).collect()
}

/// One running digest.
enum Running {
    Md5(md5::Md5),
    Sha1(sha1::Sha1),
    Sha256(sha2::Sha256),
    Sha384(sha2::Sha384),
    Sha512(sha2::Sha512),
    Crc(crc_fast::Digest, ChecksumAlgorithm),
}

impl Running {
    fn new(alg: ChecksumAlgorithm) -> Running {
        use crc_fast::CrcAlgorithm as C;
        match alg {
            ChecksumAlgorithm::Md5 => Running::Md5(md5::Md5::new()),
            ChecksumAlgorithm::Sha1 => Running::Sha1(sha1::Sha1::new()),
            ChecksumAlgorithm::Sha256 => Running::Sha256(sha2::Sha256::new()),
            ChecksumAlgorithm::Sha384 => Running::Sha384(sha2::Sha384::new()),
            ChecksumAlgorithm::Sha512 => Running::Sha512(sha2::Sha512::new()),
            ChecksumAlgorithm::Crc32 => Running::Crc(crc_fast::Digest::new(C::Crc32IsoHdlc), alg),
            ChecksumAlgorithm::Crc32c => Running::Crc(crc_fast::Digest::new(C::Crc32Iscsi), alg),
            ChecksumAlgorithm::Crc64Nvme => Running::Crc(crc_fast::Digest::new(C::Crc64Nvme), alg),
        }
    }

    fn update(&mut self, data: &[u8]) {
        match self {
            Running::Md5(h) => h.update(data),
            Running::Sha1(h) => h.update(data),
            Running::Sha256(h) => h.update(data),
            Running::Sha384(h) => h.update(data),
            Running::Sha512(h) => h.update(data),
            Running::Crc(h, _) => h.update(data),
        }
    }

    fn finish(self) -> (ChecksumAlgorithm, Vec<u8>) {
        match self {
            Running::Md5(h) => (ChecksumAlgorithm::Md5, h.finalize().to_vec()),
            Running::Sha1(h) => (ChecksumAlgorithm::Sha1, h.finalize().to_vec()),
            Running::Sha256(h) => (ChecksumAlgorithm::Sha256, h.finalize().to_vec()),
            Running::Sha384(h) => (ChecksumAlgorithm::Sha384, h.finalize().to_vec()),
            Running::Sha512(h) => (ChecksumAlgorithm::Sha512, h.finalize().to_vec()),
            Running::Crc(h, alg) => {
                let v = h.finalize();
                let bytes = if alg == ChecksumAlgorithm::Crc64Nvme {
                    v.to_be_bytes().to_vec()
                } else {
                    u32::try_from(v).unwrap_or_default().to_be_bytes().to_vec()
                };
                (alg, bytes)
            }
        }
    }
}

/// Digests of a body, computed in one pass: MD5 always, plus the algorithms asked for.
pub(crate) struct Hasher {
    running: Vec<Running>,
}

impl Hasher {
    pub(crate) fn new(extra: &[ChecksumAlgorithm]) -> Hasher {
        let mut algs = vec![ChecksumAlgorithm::Md5];
        for a in extra {
            if !algs.contains(a) {
                algs.push(*a);
            }
        }
        Hasher { running: algs.into_iter().map(Running::new).collect() }
    }

    pub(crate) fn update(&mut self, data: &[u8]) {
        for r in &mut self.running {
            r.update(data);
        }
    }

    pub(crate) fn finish(self) -> Digests {
        Digests(self.running.into_iter().map(Running::finish).collect())
    }
}

/// The digests of a body, by algorithm (MD5 always present).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Digests(pub(crate) std::collections::BTreeMap<ChecksumAlgorithm, Vec<u8>>);

impl Digests {
    /// The digest of `alg`, if it was computed.
    pub fn get(&self, alg: ChecksumAlgorithm) -> Option<&[u8]> {
        self.0.get(&alg).map(Vec::as_slice)
    }

    /// The MD5 digest.
    pub fn md5(&self) -> [u8; 16] {
        self.get(ChecksumAlgorithm::Md5).and_then(|d| d.try_into().ok()).unwrap_or_default()
    }

    /// Checks `expected` against the digest of `alg`.
    ///
    /// # Errors
    /// [`Error::BadDigest`] if they differ (or `alg` was not computed).
    pub fn verify(&self, alg: ChecksumAlgorithm, expected: &[u8]) -> Result<()> {
        let actual = self.get(alg).unwrap_or_default();
        if actual == expected {
            return Ok(());
        }
        Err(Error::BadDigest { alg: alg.display_name(), expected: to_hex(expected), actual: to_hex(actual) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_digests() {
        let mut h = Hasher::new(&ChecksumAlgorithm::ALL);
        h.update(b"hello ");
        h.update(b"world");
        let d = h.finish();
        let hex = |a| to_hex(d.get(a).unwrap());
        assert_eq!(hex(ChecksumAlgorithm::Md5), "5eb63bbbe01eeed093cb22bb8f5acdc3");
        assert_eq!(hex(ChecksumAlgorithm::Sha1), "2aae6c35c94fcfb415dbe95f408b9ce91ee846ed");
        assert_eq!(hex(ChecksumAlgorithm::Sha256), "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9");
        assert_eq!(hex(ChecksumAlgorithm::Crc32), "0d4a1185");
        assert_eq!(hex(ChecksumAlgorithm::Crc32c), "c99465aa");
        assert_eq!(d.get(ChecksumAlgorithm::Crc64Nvme).unwrap().len(), 8);
        assert_eq!(d.get(ChecksumAlgorithm::Sha512).unwrap().len(), 64);
    }

    #[test]
    fn hex_parsing() {
        assert_eq!(ChecksumAlgorithm::Md5.parse_hex("5EB63BBBE01EEED093CB22BB8F5ACDC3").unwrap()[0], 0x5e);
        let err = ChecksumAlgorithm::Md5.parse_hex("abc").unwrap_err();
        assert_eq!(err.to_string(), "MD5 is 32 hex characters, not 3");
        assert!(ChecksumAlgorithm::Md5.parse_hex(&"zz".repeat(16)).is_err());
    }

    #[test]
    fn mismatch_message() {
        let mut h = Hasher::new(&[]);
        h.update(b"x");
        let err = h.finish().verify(ChecksumAlgorithm::Md5, &[0; 16]).unwrap_err();
        assert!(err.to_string().starts_with("The MD5 checksum you specified did not match what we received.\n"));
    }
}
