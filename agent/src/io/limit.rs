//! A reader that fails once more than `limit` bytes come through it (an image larger than its
//! target disk, or than its declared size), instead of silently truncating.

use std::io::{self, Read};

/// The error inside the `io::Error` of a stream that ran past its limit, so that a caller can
/// tell "too large for the disk" from a broken stream.
#[derive(Debug)]
pub struct TooLarge(pub String);

impl std::fmt::Display for TooLarge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TooLarge {}

impl TooLarge {
    /// Whether `e` is this error.
    pub fn is(e: &io::Error) -> bool {
        e.get_ref().is_some_and(|i| i.is::<TooLarge>())
    }
}

pub struct LimitReader<R> {
    inner: R,
    left: u64,
    what: String,
}

impl<R: Read> LimitReader<R> {
    /// `what` names the limit in the error ("the target /dev/sda (8 GiB)").
    pub fn new(inner: R, limit: u64, what: impl Into<String>) -> Self {
        LimitReader {
            inner,
            left: limit,
            what: what.into(),
        }
    }
}

impl<R: Read> Read for LimitReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            // One probe byte tells a stream that ends exactly at the limit from a longer one.
            let mut probe = [0u8; 1];
            return match self.inner.read(&mut probe)? {
                0 => Ok(0),
                _ => Err(io::Error::other(TooLarge(format!(
                    "the image is larger than {}",
                    self.what
                )))),
            };
        }
        let max = buf.len().min(self.left.min(usize::MAX as u64) as usize);
        let n = self.inner.read(&mut buf[..max])?;
        self.left -= n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn exact_ok_longer_fails() {
        let mut v = Vec::new();
        LimitReader::new(&b"abcd"[..], 4, "x")
            .read_to_end(&mut v)
            .unwrap();
        assert_eq!(v, b"abcd");
        let e = LimitReader::new(&b"abcde"[..], 4, "the disk")
            .read_to_end(&mut Vec::new())
            .unwrap_err();
        assert!(e.to_string().contains("larger than the disk"));
        assert!(TooLarge::is(&e));
    }
}
