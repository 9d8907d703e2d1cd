//! A buffered reader that can look at the first bytes of a stream (magic numbers) without
//! consuming them. It is also the `BufRead` the decoders sit on, so that each decoder consumes
//! exactly its own stream and what follows (a second member, or garbage) stays visible.

use std::io::{self, BufRead, Read};

pub struct PeekReader<R> {
    inner: R,
    buf: Vec<u8>,
    pos: usize,
    end: usize,
}

impl<R: Read> PeekReader<R> {
    pub fn new(inner: R, capacity: usize) -> Self {
        PeekReader {
            inner,
            buf: vec![0; capacity.max(4096)],
            pos: 0,
            end: 0,
        }
    }

    /// Up to `n` bytes from the current position, reading more as needed; fewer only at EOF.
    pub fn peek(&mut self, n: usize) -> io::Result<&[u8]> {
        let n = n.min(self.buf.len());
        if self.end - self.pos < n {
            self.buf.copy_within(self.pos..self.end, 0);
            self.end -= self.pos;
            self.pos = 0;
            while self.end < n {
                match self.inner.read(&mut self.buf[self.end..]) {
                    Ok(0) => break,
                    Ok(k) => self.end += k,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(&self.buf[self.pos..self.end.min(self.pos + n)])
    }
}

impl<R: Read> Read for PeekReader<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.pos == self.end && out.len() >= self.buf.len() {
            return self.inner.read(out);
        }
        let avail = self.fill_buf()?;
        let n = avail.len().min(out.len());
        out[..n].copy_from_slice(&avail[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl<R: Read> BufRead for PeekReader<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.pos == self.end {
            self.pos = 0;
            self.end = loop {
                match self.inner.read(&mut self.buf) {
                    Ok(k) => break k,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            };
        }
        Ok(&self.buf[self.pos..self.end])
    }

    fn consume(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.end);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn peek_does_not_consume() {
        let data: Vec<u8> = (0..10000u32).map(|i| i as u8).collect();
        let mut r = PeekReader::new(&data[..], 4096);
        assert_eq!(r.peek(4).unwrap(), &data[..4]);
        assert_eq!(r.peek(6).unwrap(), &data[..6]);
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        assert_eq!(out, data);
    }
}
