//! Inputs for the xz tests: image-like data and its multi- and single-block encodings.

use liblzma::stream::MtStreamBuilder;
use std::io::Write;

/// Text-like data with zero runs, like a disk image (and not a tar archive).
pub fn data(n: u32) -> Vec<u8> {
    let mut v = Vec::new();
    for i in 0..n {
        v.extend_from_slice(format!("{} ", i.wrapping_mul(2654435761) % 9973).as_bytes());
        if i % 40_000 == 0 {
            v.extend(std::iter::repeat_n(0u8, 700_000));
        }
    }
    v
}

/// What `xz -T2 --block-size=BLOCK -1` writes: every block header carries its sizes.
pub fn multi_block(d: &[u8], block: u64) -> Vec<u8> {
    let stream = MtStreamBuilder::new()
        .threads(2)
        .block_size(block)
        .preset(1)
        .encoder()
        .unwrap();
    let mut e = liblzma::write::XzEncoder::new_stream(Vec::new(), stream);
    e.write_all(d).unwrap();
    e.finish().unwrap()
}

/// What `xz -T1` writes: one block, no sizes in its header.
pub fn single_block(d: &[u8], preset: u32) -> Vec<u8> {
    let mut e = liblzma::write::XzEncoder::new(Vec::new(), preset);
    e.write_all(d).unwrap();
    e.finish().unwrap()
}
