//! The floor for `scripts/bench-dd` and `scripts/bench-extract`: fetch and decode a source
//! with deployer's own code (the same fetch thread, detection and decoders as `write-image`
//! and `extract`) and throw the output away.
//!
//! Usage: decode_only [--tar] SOURCE   (a URL or path; --tar: a root tarball's stream)
//! Prints the decoded bytes and the seconds taken on stdout.

use std::io::Read;
use std::time::Instant;

use anyhow::{bail, Result};
use deployer::source::{self, decode, FetchOptions};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (tar, uri) = match args.as_slice() {
        [t, u] if t == "--tar" => (true, u.clone()),
        [u] => (false, u.clone()),
        _ => bail!("usage: decode_only [--tar] SOURCE"),
    };
    let t0 = Instant::now();
    let opened = source::open(&uri, &FetchOptions::default())?;
    // Fetch on its own thread, as write-image's fetch thread and extract's decode thread do.
    let input = deployer::io::pipelined(opened.reader, "fetch", 1 << 20, 4)?;
    let mut buf = vec![0u8; 4 << 20];
    let mut total = 0u64;
    let mut drain = |r: &mut dyn Read| -> Result<()> {
        loop {
            let n = decode::read_full(r, &mut buf)?;
            if n == 0 {
                return Ok(());
            }
            total += n as u64;
        }
    };
    if tar {
        drain(&mut decode::tar_stream(input)?)?;
    } else {
        decode::with_image(input, None, |img, _| drain(img))?;
    }
    println!("{total} bytes in {:.3}s", t0.elapsed().as_secs_f64());
    Ok(())
}
