//! One gzip member, inflated by ISA-L's igzip (through `isal-sys`).
//!
//! Why not flate2 here: a dd-gz image is inflated on one core, and that core is the whole
//! deployment's bottleneck. igzip's inflate is about 30% faster than zlib-rs on disk-image data
//! on this class of machine (docs/bench-dd.md). flate2 stays for small gzip payloads
//! (`write_files` content).
//!
//! Like `flate2::bufread::GzDecoder`, the decoder reads from a [`BufRead`] and consumes exactly
//! its member (header, deflate data, CRC32 and length trailer, both checked), so whatever
//! follows stays in the source for the caller to judge: another member or trailing garbage.

use isal_sys::igzip_lib as isal;
use std::io::{self, BufRead, Read};
use std::ptr;

pub struct GzipMember<R: BufRead> {
    src: R,
    /// ~70 KiB of state and tables: boxed so that moving the decoder stays cheap.
    state: Box<isal::inflate_state>,
    finished: bool,
}

// SAFETY: the only pointers in the state are `next_in`/`next_out`, which are set just before
// each `isal_inflate` call to buffers borrowed for that call and nulled right after it; the
// state owns everything else, so moving it to another thread is sound.
unsafe impl<R: BufRead + Send> Send for GzipMember<R> {}

impl<R: BufRead> GzipMember<R> {
    pub fn new(src: R) -> Self {
        // SAFETY: inflate_state is plain C data (integers, arrays, raw pointers), for which all
        // zero bytes are a valid value; isal_inflate_init then sets it up.
        let mut state: Box<isal::inflate_state> = Box::new(unsafe { std::mem::zeroed() });
        unsafe { isal::isal_inflate_init(&mut *state) };
        state.crc_flag = isal::ISAL_GZIP;
        GzipMember {
            src,
            state,
            finished: false,
        }
    }

    /// The source, positioned right after this member's trailer once the member has been read
    /// to its end.
    pub fn into_inner(self) -> R {
        self.src
    }
}

impl<R: BufRead> Read for GzipMember<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.finished || buf.is_empty() {
            return Ok(0);
        }
        let out_len = buf.len().min(u32::MAX as usize);
        loop {
            let input = self.src.fill_buf()?;
            let in_len = input.len().min(u32::MAX as usize);
            let st = &mut *self.state;
            st.next_in = input.as_ptr().cast_mut();
            st.avail_in = in_len as u32;
            st.next_out = buf.as_mut_ptr();
            st.avail_out = out_len as u32;
            // SAFETY: next_in/avail_in describe `input` and next_out/avail_out `buf`, both
            // alive for the call; igzip reads and writes only within them and its own state.
            let ret = unsafe { isal::isal_inflate(st) };
            let used = in_len - st.avail_in as usize;
            let produced = out_len - st.avail_out as usize;
            st.next_in = ptr::null_mut();
            st.next_out = ptr::null_mut();
            let finished = st.block_state == isal::isal_block_state_ISAL_BLOCK_FINISH;
            self.src.consume(used);
            if ret < 0 {
                return Err(io::Error::new(io::ErrorKind::InvalidData, describe(ret)));
            }
            // FINISH is set only once the trailer is checked and all output is handed out.
            if finished {
                self.finished = true;
                return Ok(produced);
            }
            if produced > 0 {
                return Ok(produced);
            }
            if in_len == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the gzip member ends before its trailer",
                ));
            }
            // igzip takes partial input into its own buffer, so with input on offer and room
            // for output, doing nothing at all means it is stuck on bad data; don't spin.
            if used == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "the gzip decoder cannot make progress (corrupt header or data)",
                ));
            }
        }
    }
}

fn describe(code: i32) -> String {
    let what = match code {
        isal::ISAL_INVALID_BLOCK => "invalid deflate block",
        isal::ISAL_INVALID_SYMBOL => "invalid deflate symbol",
        isal::ISAL_INVALID_LOOKBACK => "invalid back-reference distance",
        isal::ISAL_INVALID_WRAPPER => "invalid gzip header",
        isal::ISAL_UNSUPPORTED_METHOD => "unsupported compression method in the gzip header",
        isal::ISAL_INCORRECT_CHECKSUM => "CRC32 or length in the gzip trailer does not match",
        _ => "inflate error",
    };
    format!("{what} (igzip code {code})")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn data() -> Vec<u8> {
        let mut d: Vec<u8> = (0..400_000u32).map(|i| (i * 7 % 253) as u8).collect();
        d.extend(std::iter::repeat_n(0u8, 300_000));
        d.extend((0..50_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8));
        d
    }

    fn gz(d: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(d).unwrap();
        e.finish().unwrap()
    }

    /// A source that hands out `step` bytes at a time, to cut headers and trailers anywhere.
    struct Trickle<'a>(&'a [u8], usize);
    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.0.len().min(self.1).min(buf.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    fn read_member(src: &[u8], step: usize, out_chunk: usize) -> io::Result<(Vec<u8>, Vec<u8>)> {
        let mut m = GzipMember::new(io::BufReader::with_capacity(step, Trickle(src, step)));
        let mut out = Vec::new();
        let mut buf = vec![0u8; out_chunk];
        loop {
            let n = m.read(&mut buf)?;
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        let mut rest = Vec::new();
        m.into_inner().read_to_end(&mut rest)?;
        Ok((out, rest))
    }

    #[test]
    fn one_member_exactly_whatever_the_chunking() {
        let d = data();
        let mut src = gz(&d);
        src.extend(b"NEXT");
        for (step, out_chunk) in [(1 << 20, 1 << 20), (1, 4096), (7, 65_536), (4096, 1)] {
            let (out, rest) = read_member(&src, step, out_chunk).unwrap();
            assert!(out == d, "output differs (step {step}, out {out_chunk})");
            assert_eq!(rest, b"NEXT", "step {step}, out {out_chunk}");
        }
    }

    #[test]
    fn empty_member() {
        let (out, rest) = read_member(&gz(b""), 1 << 16, 4096).unwrap();
        assert!(out.is_empty() && rest.is_empty());
    }

    #[test]
    fn truncation_and_corruption_are_errors() {
        let d = data();
        let g = gz(&d);
        for cut in [5, 10, g.len() / 2, g.len() - 4, g.len() - 1] {
            let e = read_member(&g[..cut], 1 << 16, 1 << 16).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof, "cut at {cut}: {e}");
        }
        let mut bad_crc = g.clone();
        let n = bad_crc.len();
        bad_crc[n - 6] ^= 1;
        let e = read_member(&bad_crc, 1 << 16, 1 << 16).unwrap_err();
        assert!(e.to_string().contains("CRC32"), "{e}");
        let mut bad_len = g.clone();
        bad_len[n - 2] ^= 1;
        let e = read_member(&bad_len, 1 << 16, 1 << 16).unwrap_err();
        assert!(e.to_string().contains("trailer"), "{e}");
        let mut bad_data = g.clone();
        for b in &mut bad_data[100..200] {
            *b = !*b;
        }
        assert!(read_member(&bad_data, 1 << 16, 1 << 16).is_err());
        let e = read_member(b"\x1f\x8b\x09\x00\0\0\0\0\0\x03xxxxxxxx", 1 << 16, 4096).unwrap_err();
        assert!(e.to_string().contains("method"), "{e}");
    }
}
