//! The floor for `scripts/bench-dd` and `scripts/bench-extract`: fetch and decode a source
//! with deployer's own code (the same fetch thread, detection and decoders as `write-image`
//! and `extract`) and throw the output away.
//!
//! Usage: decode_only [--tar] SOURCE   (a URL or path; --tar: a root tarball's stream)
//! Prints the decoded bytes and the seconds taken on stdout.

use std::io::Read;
use std::time::Instant;

use anyhow::{bail, Result};
use crossbeam_channel::bounded;
use deployer::io::{AlignedBuf, Piece, Progress};
use deployer::source::xz::{self, parallel::Probe};
use deployer::source::{self, decode, FetchOptions};

fn xz_blocks<R: Read + Send>(b: xz::parallel::Blocks<R>) -> Result<u64> {
    let (free_tx, free_rx) = bounded::<AlignedBuf>(5);
    for _ in 0..5 {
        free_tx.send(AlignedBuf::new(4 << 20)).expect("pool");
    }
    let (out_tx, out_rx) = bounded::<Piece>(3);
    let drain = std::thread::spawn(move || {
        let mut n = 0u64;
        for p in out_rx {
            n += p.buf.len as u64;
            let _ = free_tx.send(p.buf);
        }
        n
    });
    let progress = Progress::default();
    let sink = xz::parallel::Sink {
        free: &free_rx,
        out: &out_tx,
        progress: &progress,
        limit: None,
    };
    b.run(&sink)?;
    drop(out_tx);
    Ok(drain.join().expect("drain thread"))
}

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
        match xz::parallel::probe(input)? {
            // Multi-block xz: write-image's block decoder, its pieces dropped by a thread that
            // hands the buffers back, as the writer does.
            Probe::Blocks(b) => total = xz_blocks(b)?,
            Probe::Other(input) => {
                decode::with_image(input, None, |img, _| drain(img))?;
            }
        }
    }
    println!("{total} bytes in {:.3}s", t0.elapsed().as_secs_f64());
    Ok(())
}
