//! A minimal source path for the extract stage until the shared source layer lands: open a local
//! file or an http(s) URL, detect the compression from the magic bytes, and decompress on a
//! reader thread that hands bounded chunks to the unpacker, so decoding and writing overlap.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};

use anyhow::{bail, Context, Result};
use crossbeam_channel::{bounded, Receiver};

/// The compression of a tar stream, from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    Gzip,
    Bzip2,
    Xz,
    Zstd,
    None,
}

/// Detect from at least the first 262 bytes (a tar header's `ustar` magic is at 257).
pub fn detect(head: &[u8]) -> Result<Compression> {
    Ok(if head.starts_with(&[0x1f, 0x8b]) {
        Compression::Gzip
    } else if head.starts_with(b"BZh") {
        Compression::Bzip2
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        Compression::Xz
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Compression::Zstd
    } else if head.len() >= 262 && &head[257..262] == b"ustar" {
        Compression::None
    } else {
        bail!(
            "not a tar archive (plain, gzip, bzip2, xz or zstd): unknown magic bytes {:02x?}",
            &head[..head.len().min(8)]
        )
    })
}

/// Open a source uri (`file://`, a path, `http://`, `https://`) as a raw byte stream.
pub fn open_uri(uri: &str) -> Result<Box<dyn Read + Send>> {
    if uri.starts_with("http://") || uri.starts_with("https://") {
        let client = reqwest::blocking::Client::builder()
            .timeout(None)
            .connect_timeout(std::time::Duration::from_secs(30))
            .build()
            .context("building HTTP client")?;
        let resp = client
            .get(uri)
            .send()
            .with_context(|| format!("fetching {uri}"))?;
        let status = resp.status();
        if !status.is_success() {
            bail!("fetching {uri}: HTTP {status}");
        }
        return Ok(Box::new(resp));
    }
    let path = uri.strip_prefix("file://").unwrap_or(uri);
    let f = File::open(path).with_context(|| format!("opening {path}"))?;
    Ok(Box::new(f))
}

/// Wrap a raw stream in its decoder, chosen by the magic bytes.
pub fn decoder(raw: Box<dyn Read + Send>) -> Result<Box<dyn Read + Send>> {
    let mut r = BufReader::with_capacity(1 << 20, raw);
    let head = r
        .fill_buf()
        .context("reading the first bytes of the source")?;
    let head = if head.len() < 262 {
        // A short first read: peeking more would need a copy; tiny archives are fine with this.
        head.to_vec()
    } else {
        head[..262].to_vec()
    };
    Ok(match detect(&head)? {
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(r)),
        Compression::Bzip2 => Box::new(bzip2::bufread::MultiBzDecoder::new(r)),
        Compression::Xz => Box::new(liblzma::bufread::XzDecoder::new_multi_decoder(r)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(r)?),
        Compression::None => Box::new(r),
    })
}

const CHUNK: usize = 512 * 1024;
const DEPTH: usize = 8;

/// Run `src` on a thread; the returned reader yields its bytes. Memory: at most DEPTH+2 chunks.
pub fn pipelined(mut src: Box<dyn Read + Send>) -> ChannelReader {
    let (tx, rx) = bounded::<io::Result<Vec<u8>>>(DEPTH);
    let handle = std::thread::Builder::new()
        .name("extract-decode".into())
        .spawn(move || loop {
            let mut buf = vec![0u8; CHUNK];
            let mut n = 0;
            let res = loop {
                match src.read(&mut buf[n..]) {
                    Ok(0) => break Ok(()),
                    Ok(k) => {
                        n += k;
                        if n == CHUNK {
                            break Ok(());
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => break Err(e),
                }
            };
            match res {
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return;
                }
                Ok(()) if n == 0 => return,
                Ok(()) => {
                    buf.truncate(n);
                    let last = n < CHUNK;
                    if tx.send(Ok(buf)).is_err() || last {
                        return;
                    }
                }
            }
        })
        .expect("spawning decoder thread");
    ChannelReader {
        rx,
        cur: Vec::new(),
        pos: 0,
        _handle: Some(handle),
    }
}

/// The consuming end of [`pipelined`].
pub struct ChannelReader {
    rx: Receiver<io::Result<Vec<u8>>>,
    cur: Vec<u8>,
    pos: usize,
    _handle: Option<std::thread::JoinHandle<()>>,
}

impl Read for ChannelReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.cur.len() {
            match self.rx.recv() {
                Ok(Ok(v)) => {
                    self.cur = v;
                    self.pos = 0;
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => return Ok(0),
            }
        }
        let n = out.len().min(self.cur.len() - self.pos);
        out[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_magic() {
        assert_eq!(detect(&[0x1f, 0x8b, 8]).unwrap(), Compression::Gzip);
        assert_eq!(detect(b"BZh91AY").unwrap(), Compression::Bzip2);
        assert_eq!(
            detect(&[0x28, 0xb5, 0x2f, 0xfd, 0]).unwrap(),
            Compression::Zstd
        );
        let mut tar = vec![0u8; 512];
        tar[257..262].copy_from_slice(b"ustar");
        assert_eq!(detect(&tar).unwrap(), Compression::None);
        assert!(detect(b"PK\x03\x04 zip")
            .unwrap_err()
            .to_string()
            .contains("not a tar"));
    }

    #[test]
    fn pipeline_passes_bytes_through() {
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let mut r = pipelined(Box::new(io::Cursor::new(data.clone())));
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        assert_eq!(out, data);
    }
}
