//! A reader that hashes (SHA-256 and/or SHA-512) and counts what passes through it.

use sha2::{Digest, Sha256, Sha512};
use std::io::{self, Read};

/// The digests and size of everything read, as lowercase hex.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Digests {
    pub size: u64,
    pub sha256: Option<String>,
    pub sha512: Option<String>,
}

pub struct HashReader<R> {
    inner: R,
    size: u64,
    sha256: Option<Sha256>,
    sha512: Option<Sha512>,
}

impl<R: Read> HashReader<R> {
    /// Hash only what is asked for: SHA-512 costs a core on fast streams.
    pub fn new(inner: R, sha256: bool, sha512: bool) -> Self {
        HashReader {
            inner,
            size: 0,
            sha256: sha256.then(Sha256::new),
            sha512: sha512.then(Sha512::new),
        }
    }

    pub fn digests(&self) -> Digests {
        Digests {
            size: self.size,
            sha256: self.sha256.clone().map(|h| hex::encode(h.finalize())),
            sha512: self.sha512.clone().map(|h| hex::encode(h.finalize())),
        }
    }
}

impl<R: Read> Read for HashReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.size += n as u64;
        if let Some(h) = &mut self.sha256 {
            h.update(&buf[..n]);
        }
        if let Some(h) = &mut self.sha512 {
            h.update(&buf[..n]);
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn hashes_and_counts() {
        let mut r = HashReader::new(&b"abc"[..], true, true);
        io::copy(&mut r, &mut io::sink()).unwrap();
        let d = r.digests();
        assert_eq!(d.size, 3);
        assert_eq!(
            d.sha256.unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(d.sha512.unwrap().starts_with("ddaf35a1"));
    }
}
