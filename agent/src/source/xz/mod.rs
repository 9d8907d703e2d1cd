//! The xz decoders. A dd-xz disk image in a multi-block stream is decoded block by block on
//! several threads, each block written at its own offset ([`parallel`], on liblzma's block
//! decoder: [`block`], and the container around it: [`format`]); it needs no block's output
//! buffered whole, so `xz -T0 -6` streams decode in parallel within the memory bound.
//!
//! Everything else (tarballs, dd-txz, single-block streams) reads one ordered stream through
//! [`decoder`]: liblzma's threaded decoder, held to the agent's memory bound.
//!
//! Multi-block streams (`xz -T`, pixz) carry each block's sizes in its header, so liblzma can
//! hand blocks to worker threads; each block in flight costs its dictionary plus its whole
//! compressed and uncompressed size (liblzma's `mem_next_block`). A block that does not fit
//! `memlimit_threading` is decoded in the calling thread ("direct mode", the same block decoder
//! as the single-threaded one). A stream whose first block header carries no sizes (`xz -T1`,
//! one block) gets liblzma's single-threaded decoder itself, as before.
//!
//! The agent runs from RAM with a 64 MiB peak RSS bound, and the rest of the dd pipeline
//! (fetch queue, write buffers, HTTP client) takes about 41 MiB (`scripts/bench-dd`, raw
//! format). With 20 MiB here the peak was 61.3 MiB, so 16 MiB leaves a margin: enough for three
//! blocks of a low preset (`xz -T0 -1`: 1 MiB dictionary, 3 MiB blocks, ~5 MiB each) but not
//! for one of `xz -T0 -6` (8 MiB dictionary, 24 MiB blocks, ~40 MiB each), which therefore
//! decodes single-threaded as before. docs/bench-dd.md has the numbers for both.

pub mod block;
pub mod format;
pub mod parallel;
#[cfg(test)]
mod testdata;

use std::io::{self, BufRead};

use liblzma::bufread::XzDecoder;
use liblzma::stream::MtStreamBuilder;

/// Memory the threaded decoder may use for blocks in flight (see the module comment).
const THREADING_MEMLIMIT: u64 = 16 << 20;

/// Override of [`THREADING_MEMLIMIT`] in MiB, for benchmarks that show the trade-off.
const THREADING_ENV: &str = "DEPLOYER_XZ_THREADING_MIB";

/// Whether an xz stream starting with `head` (its first 14 bytes or more) has its first
/// block's compressed and uncompressed sizes in the block header: what `xz -T`/pixz write, and
/// what liblzma's threaded decoder needs to hand a block to a worker.
pub fn first_block_sized(head: &[u8]) -> bool {
    // 12 bytes of stream header, then the block header: its size byte (0 = the index, no
    // block), then its flags (0x40: compressed size present, 0x80: uncompressed size present).
    head.len() >= 14 && head[12] != 0 && head[13] & 0xC0 == 0xC0
}

/// One xz stream over `src`. `threaded` (see [`first_block_sized`]): decoded on up to as many
/// threads as there are CPUs (at most 4) while the blocks in flight fit the memory limit;
/// otherwise by liblzma's single-threaded decoder.
pub fn decoder<R: BufRead>(src: R, threaded: bool) -> io::Result<XzDecoder<R>> {
    if !threaded {
        return Ok(XzDecoder::new(src));
    }
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
    let limit = std::env::var(THREADING_ENV)
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .map_or(THREADING_MEMLIMIT, |m| m << 20);
    let stream = MtStreamBuilder::new()
        .threads(threads as u32)
        .memlimit_threading(limit)
        // Never refuse a stream for its dictionary: direct mode needs only that.
        .memlimit_stop(u64::MAX)
        .decoder()
        .map_err(io::Error::other)?;
    Ok(XzDecoder::new_stream(src, stream))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn data() -> Vec<u8> {
        testdata::data(400_000)
    }

    fn multi_block(d: &[u8]) -> Vec<u8> {
        testdata::multi_block(d, 256 << 10)
    }

    fn single_block(d: &[u8]) -> Vec<u8> {
        testdata::single_block(d, 6)
    }

    fn decode(x: &[u8]) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        decoder(io::BufReader::new(x), first_block_sized(x))?.read_to_end(&mut out)?;
        Ok(out)
    }

    #[test]
    fn multi_and_single_block_decode_byte_identical() {
        let d = data();
        let m = multi_block(&d);
        let s = single_block(&d);
        assert_ne!(m, s, "the two encodings differ");
        assert!(first_block_sized(&m));
        assert!(!first_block_sized(&s));
        // Either decoder reads either stream.
        let mut out = Vec::new();
        decoder(&s[..], true)
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, d);
        assert_eq!(decode(&m).unwrap(), d);
        assert_eq!(decode(&s).unwrap(), d);
        // The reference decoder agrees.
        let mut r = Vec::new();
        liblzma::read::XzDecoder::new(&m[..])
            .read_to_end(&mut r)
            .unwrap();
        assert_eq!(r, d);
    }

    #[test]
    fn corrupt_multi_block_stream_fails() {
        let d = data();
        let mut m = multi_block(&d);
        let mid = m.len() / 2;
        m[mid] ^= 0x55;
        assert!(decode(&m).is_err());
        assert!(decode(&m[..m.len() - 20]).is_err());
    }
}
