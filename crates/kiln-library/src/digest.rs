//! sha256 digests, as registries write them (`sha256:<hex>`) and as blob files are named
//! (`sha256-<hex>`, since `:` is not allowed in Windows file names).

use crate::error::LibraryError;
use sha2::{Digest as _, Sha256};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest([u8; 32]);

impl Digest {
    /// Accepts `sha256:<hex>` and `sha256-<hex>`, 64 hex digits in either case.
    pub fn parse(s: &str) -> Result<Digest, LibraryError> {
        let bad = || LibraryError::DigestSyntax(s.to_string());
        let hex = s.strip_prefix("sha256:").or_else(|| s.strip_prefix("sha256-")).ok_or_else(bad)?;
        if hex.len() != 64 {
            return Err(bad());
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2).ok_or_else(bad)?, 16).map_err(|_| bad())?;
        }
        Ok(Digest(out))
    }

    pub fn of_bytes(bytes: &[u8]) -> Digest {
        Digest(Sha256::digest(bytes).into())
    }

    pub(crate) fn from_hasher(h: Sha256) -> Digest {
        Digest(h.finalize().into())
    }

    pub fn hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The blob's file name in the library.
    pub fn file_name(&self) -> String {
        format!("sha256-{}", self.hex())
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex())
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Digest, D::Error> {
        let s = String::deserialize(d)?;
        Digest::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_spellings_and_round_trips() {
        let empty = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let d = Digest::parse(empty).unwrap();
        assert_eq!(d, Digest::of_bytes(b""));
        assert_eq!(d.to_string(), empty);
        assert_eq!(Digest::parse(&d.file_name()).unwrap(), d);
        assert_eq!(Digest::parse(&empty.to_uppercase().replace("SHA256", "sha256")).unwrap(), d);
        let json = serde_json::to_string(&d).unwrap();
        assert_eq!(serde_json::from_str::<Digest>(&json).unwrap(), d);
    }

    #[test]
    fn refuses_malformed_digests() {
        for bad in [
            "",
            "sha256:",
            "md5:00",
            "sha256:xyz",
            &format!("sha256:{}", "0".repeat(63)),
            &format!("sha256:{}é", "0".repeat(62)),
        ] {
            assert!(matches!(Digest::parse(bad), Err(LibraryError::DigestSyntax(_))), "{bad:?}");
        }
    }
}
