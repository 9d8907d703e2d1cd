//! What a source promises about its bytes as served (the config's `sha256`, `sha512`, `size`),
//! and a reader that checks the promise when the stream ends.

use anyhow::{bail, Result};
use std::io::{self, Read};

use crate::io::{Digests, HashReader};

/// The expected size and checksums of a source; `None` is not checked.
#[derive(Debug, Clone, Default)]
pub struct Expect {
    pub sha256: Option<String>,
    pub sha512: Option<String>,
    pub size: Option<u64>,
}

impl Expect {
    pub fn is_empty(&self) -> bool {
        self.sha256.is_none() && self.sha512.is_none() && self.size.is_none()
    }

    /// Compare what was read from `uri` with the promise.
    pub fn check(&self, uri: &str, d: &Digests) -> Result<()> {
        if let Some(want) = self.size {
            if want != d.size {
                bail!(
                    "the source is {} bytes, not the declared size {want}",
                    d.size
                );
            }
        }
        for (name, want, got) in [
            ("sha256", &self.sha256, &d.sha256),
            ("sha512", &self.sha512, &d.sha512),
        ] {
            if let (Some(w), Some(g)) = (want, got) {
                if !w.trim().eq_ignore_ascii_case(g) {
                    bail!("{name} mismatch for {uri}: expected {}, got {g}", w.trim());
                }
            }
        }
        Ok(())
    }
}

/// Hashes what passes through; at the end of the stream, a mismatch is the read's error
/// (`InvalidData`), so no consumer can take a bad source for a good one.
pub struct VerifyReader<R> {
    inner: HashReader<R>,
    expect: Expect,
    uri: String,
    checked: bool,
}

impl<R: Read> VerifyReader<R> {
    pub fn new(inner: R, expect: Expect, uri: &str) -> Self {
        let (s256, s512) = (expect.sha256.is_some(), expect.sha512.is_some());
        VerifyReader {
            inner: HashReader::new(inner, s256, s512),
            expect,
            uri: uri.to_string(),
            checked: false,
        }
    }
}

impl<R: Read> Read for VerifyReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() && !self.checked {
            self.checked = true;
            self.expect
                .check(&self.uri, &self.inner.digests())
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ABC256: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    fn read_all(e: Expect) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        VerifyReader::new(&b"abc"[..], e, "u").read_to_end(&mut out)?;
        Ok(out)
    }

    #[test]
    fn checks_at_the_end() {
        let ok = Expect {
            sha256: Some(ABC256.to_uppercase()),
            size: Some(3),
            ..Expect::default()
        };
        assert_eq!(read_all(ok).unwrap(), b"abc");
        let e = read_all(Expect {
            sha256: Some("00".into()),
            ..Expect::default()
        })
        .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert!(e
            .to_string()
            .starts_with("sha256 mismatch for u: expected 00, got ba78"));
        let e = read_all(Expect {
            size: Some(4),
            ..Expect::default()
        })
        .unwrap_err();
        assert!(e.to_string().contains("3 bytes, not the declared size 4"));
    }
}
