//! A stream carried across threads as bounded chunks: [`pipelined`] runs a reader on its own
//! thread (so decoding overlaps the consumer), [`ChannelReader`] reads the chunks back as one
//! stream. Memory is bounded by the channel's depth.

use crossbeam_channel::{bounded, Receiver};
use std::io::{self, Read};

/// Reads a channel of chunks as one stream; an `Err` chunk is returned as the read's error,
/// a closed channel is the end of the stream.
pub struct ChannelReader {
    rx: Receiver<io::Result<Vec<u8>>>,
    cur: Vec<u8>,
    pos: usize,
    _thread: Option<std::thread::JoinHandle<()>>,
}

impl ChannelReader {
    pub fn new(rx: Receiver<io::Result<Vec<u8>>>) -> Self {
        ChannelReader {
            rx,
            cur: Vec::new(),
            pos: 0,
            _thread: None,
        }
    }
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.cur.len() {
            match self.rx.recv() {
                Ok(Ok(c)) => {
                    self.cur = c;
                    self.pos = 0;
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => return Ok(0),
            }
        }
        let n = (self.cur.len() - self.pos).min(buf.len());
        buf[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Read `src` on a thread named `name` in `chunk`-byte pieces, at most `depth` queued.
pub fn pipelined(
    mut src: Box<dyn Read + Send>,
    name: &str,
    chunk: usize,
    depth: usize,
) -> io::Result<ChannelReader> {
    let (tx, rx) = bounded::<io::Result<Vec<u8>>>(depth);
    let handle = std::thread::Builder::new()
        .name(name.into())
        .spawn(move || loop {
            let mut buf = vec![0u8; chunk];
            match super::read_full(&mut src, &mut buf) {
                Ok(0) => return,
                Ok(n) => {
                    buf.truncate(n);
                    if tx.send(Ok(buf)).is_err() || n < chunk {
                        return;
                    }
                }
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return;
                }
            }
        })?;
    let mut r = ChannelReader::new(rx);
    r._thread = Some(handle);
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipeline_passes_bytes_and_errors_through() {
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let mut r = pipelined(Box::new(io::Cursor::new(data.clone())), "t", 1 << 19, 4).unwrap();
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        assert_eq!(out, data);

        struct Failing;
        impl Read for Failing {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::other("boom"))
            }
        }
        let mut r = pipelined(Box::new(Failing), "t", 1024, 2).unwrap();
        let e = r.read_to_end(&mut Vec::new()).unwrap_err();
        assert_eq!(e.to_string(), "boom");
    }
}
