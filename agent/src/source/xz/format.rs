//! The xz container around the blocks: stream header, index, stream footer and the padding
//! between concatenated streams (the .xz file format, sections 2 and 4). The blocks are
//! [`super::block`]'s; the index is checked against what the blocks turned out to be, so a
//! stream decoded block by block is held to the same checks as liblzma's stream decoder.

use std::io::{self, BufRead, Read};

use liblzma_sys as sys;

pub const HEADER_LEN: usize = 12;
pub const MAGIC: [u8; 6] = [0xFD, b'7', b'z', b'X', b'Z', 0];

fn bad(what: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.into())
}

/// The error of an xz stream that ends before its footer, worded as the sequential path words it.
pub fn truncated() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "the xz stream ends early: the image is truncated",
    )
}

/// Read exactly `buf.len()` bytes; the end of the input first is a truncated stream.
pub fn read_exact<R: Read>(r: &mut R, buf: &mut [u8]) -> io::Result<()> {
    r.read_exact(buf).map_err(|e| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            truncated()
        } else {
            e
        }
    })
}

/// The check type of a stream header, or why it is not one.
pub fn stream_header(bytes: &[u8; HEADER_LEN]) -> io::Result<sys::lzma_stream_flags> {
    // SAFETY: all-zero is a valid value of this plain C struct; `bytes` has 12 bytes.
    let mut f: sys::lzma_stream_flags = unsafe { std::mem::zeroed() };
    match unsafe { sys::lzma_stream_header_decode(&mut f, bytes.as_ptr()) } {
        sys::LZMA_OK => Ok(f),
        sys::LZMA_FORMAT_ERROR => Err(bad("not an xz stream header")),
        sys::LZMA_OPTIONS_ERROR => Err(bad("an xz stream header with unsupported flags")),
        _ => Err(bad("a corrupt xz stream header (CRC32 mismatch)")),
    }
}

/// What the index records for one block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record {
    pub unpadded: u64,
    pub uncompressed: u64,
}

/// Reads bytes while keeping their CRC32 and count.
struct Crc<'a, R> {
    r: &'a mut R,
    crc: u32,
    len: u64,
}

impl<R: Read> Crc<'_, R> {
    fn byte(&mut self) -> io::Result<u8> {
        let mut b = [0u8; 1];
        read_exact(self.r, &mut b)?;
        // SAFETY: one valid byte.
        self.crc = unsafe { sys::lzma_crc32(b.as_ptr(), 1, self.crc) };
        self.len += 1;
        Ok(b[0])
    }

    /// A variable-length integer: 7 bits a byte, at most 9 bytes, minimally encoded.
    fn vli(&mut self) -> io::Result<u64> {
        let mut v = 0u64;
        for i in 0..9 {
            let b = self.byte()?;
            if i > 0 && b == 0 {
                return Err(bad("a corrupt xz index (badly encoded number)"));
            }
            v |= u64::from(b & 0x7F) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(bad("a corrupt xz index (number too long)"))
    }
}

/// Read the index, whose indicator byte (0) was just read, and check that it lists exactly
/// `blocks`. Returns the index's length (what the footer's backward size must say).
pub fn check_index<R: Read>(r: &mut R, blocks: &[Record]) -> io::Result<u64> {
    // SAFETY: one valid byte.
    let crc0 = unsafe { sys::lzma_crc32([0u8].as_ptr(), 1, 0) };
    let mut c = Crc {
        r,
        crc: crc0,
        len: 1,
    };
    let count = c.vli()?;
    if count != blocks.len() as u64 {
        return Err(bad(format!(
            "the xz index lists {count} blocks, the stream has {}",
            blocks.len()
        )));
    }
    for (i, want) in blocks.iter().enumerate() {
        let got = Record {
            unpadded: c.vli()?,
            uncompressed: c.vli()?,
        };
        if got != *want {
            return Err(bad(format!(
                "the xz index does not match block {i}: it lists {got:?}, the block is {want:?}"
            )));
        }
    }
    while !c.len.is_multiple_of(4) {
        if c.byte()? != 0 {
            return Err(bad("a corrupt xz index (non-zero padding)"));
        }
    }
    let crc = c.crc;
    let len = c.len + 4;
    let mut stored = [0u8; 4];
    read_exact(c.r, &mut stored)?;
    if u32::from_le_bytes(stored) != crc {
        return Err(bad("a corrupt xz index (CRC32 mismatch)"));
    }
    Ok(len)
}

/// Read and check the stream footer against its header and the index just read.
pub fn check_footer<R: Read>(
    r: &mut R,
    header: &sys::lzma_stream_flags,
    index_len: u64,
) -> io::Result<()> {
    let mut b = [0u8; HEADER_LEN];
    read_exact(r, &mut b)?;
    // SAFETY: as in `stream_header`.
    let mut f: sys::lzma_stream_flags = unsafe { std::mem::zeroed() };
    if unsafe { sys::lzma_stream_footer_decode(&mut f, b.as_ptr()) } != sys::LZMA_OK {
        return Err(bad("a corrupt xz stream footer"));
    }
    // SAFETY: two initialised flag structs.
    if unsafe { sys::lzma_stream_flags_compare(header, &f) } != sys::LZMA_OK {
        return Err(bad("the xz stream footer does not match its header"));
    }
    if f.backward_size != index_len {
        return Err(bad(
            "the xz stream footer's index size does not match the index",
        ));
    }
    Ok(())
}

/// After a stream footer: the header of the next stream, or `None` at the end of the input.
/// Stream padding (zeros, four at a time) is skipped; anything else is trailing garbage,
/// refused as the sequential decoder refuses it.
pub fn next_stream<R: BufRead>(
    r: &mut R,
    image_bytes: u64,
) -> io::Result<Option<[u8; HEADER_LEN]>> {
    let garbage = |got: &[u8]| {
        bad(format!(
            "trailing garbage after the xz stream (it ended after {image_bytes} image bytes, then came {:02x?})",
            &got[..got.len().min(6)]
        ))
    };
    loop {
        let first = match r.fill_buf()? {
            [] => return Ok(None),
            b => b[0],
        };
        let mut buf = [0u8; HEADER_LEN];
        let want = if first == 0 { 4 } else { HEADER_LEN };
        let n = crate::io::read_full(r, &mut buf[..want])?;
        if first == 0 {
            if n < 4 || buf[..4] != [0; 4] {
                return Err(bad(
                    "xz stream padding that is not a multiple of four zero bytes",
                ));
            }
            continue;
        }
        if n < HEADER_LEN || buf[..MAGIC.len()] != MAGIC {
            return Err(garbage(&buf[..n]));
        }
        return Ok(Some(buf));
    }
}
