//! dd-xz onto a disk, block by block on several threads, each block's output written at its
//! own offset: a multi-block stream (`xz -T0`, pixz) decodes in parallel without buffering any
//! block's output whole, which is what keeps liblzma's threaded decoder from running `xz -6`
//! streams (24 MiB blocks) in parallel within the agent's memory bound (see `super`).
//!
//! ```text
//! reader (this thread): stream header, block headers, each block's bytes, index, footer
//!   --Job (a block's bytes, at most BUDGET in flight)--> workers x N: block decoder
//!   --Piece (4 MiB buffer + image offset)--> the writer (out of order across blocks)
//! ```
//!
//! Memory: N dictionaries (8 MiB each for `-6`), at most `BUDGET` of compressed bytes, and the
//! writer's buffer pool. A block whose header carries no sizes, or that is larger than the
//! budget, is decoded by one worker straight from the input (the reader waits for it), so any
//! xz stream is decoded, only not always in parallel. Every check of the sequential decoder is
//! kept: each block's sizes and check (liblzma), the index against the blocks, the footer
//! against the header and the index, stream padding, trailing garbage, truncation.

use std::io::{self, BufRead, BufReader, Cursor, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex};

use crossbeam_channel::{bounded, Receiver, Sender};

use super::block::{self, Decoder, Header};
use super::format::{self, Record, HEADER_LEN, MAGIC};
use crate::io::{read_full, AlignedBuf, Piece, Progress, TooLarge};

/// Compressed bytes held at once (read ahead, queued, being decoded). `xz -T0 -6` blocks of a
/// disk image compress to 1-8 MiB; two of them in flight keep two workers busy.
const BUDGET: u64 = 16 << 20;
const BUDGET_ENV: &str = "DEPLOYER_XZ_BUDGET_MIB";
/// Worker threads: one a CPU, at most this many (each holds a dictionary).
const MAX_THREADS: usize = 4;
const THREADS_ENV: &str = "DEPLOYER_XZ_THREADS";
const READ_BUF: usize = 256 << 10;
/// Bytes of each pool buffer a worker fills: half of the writer's 4 MiB, so that the pool
/// costs 10 MiB instead of 20 and the dictionaries fit (the pages beyond are never touched).
/// Measured on the Debian image's `xz -T0 -6` onto a loop device: 1 MiB pieces cost 0.6 s
/// (8.76 s against 8.01-8.24 s: the writer's synchronous O_DIRECT writes), 4 MiB ones 10 MiB
/// of RSS (68.7 MiB) for no gain; 2 MiB: 58.5 MiB.
const PIECE: usize = 2 << 20;
const PIECE_ENV: &str = "DEPLOYER_XZ_PIECE_KIB";

fn piece() -> usize {
    static P: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *P.get_or_init(|| (env_or(PIECE_ENV, (PIECE >> 10) as u64) as usize) << 10)
}

fn env_or(key: &str, default: u64) -> u64 {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn budget() -> u64 {
    env_or(BUDGET_ENV, BUDGET >> 20) << 20
}

/// What [`probe`] found.
pub enum Probe<R> {
    /// A multi-block xz stream holding a disk image: decode it with [`Blocks::run`].
    Blocks(Blocks<R>),
    /// Anything else: the same bytes, from the start, for the sequential decoders.
    Other(io::Chain<Cursor<Vec<u8>>, R>),
}

/// An xz stream whose first block is read (and not a tar archive), ready to run.
pub struct Blocks<R> {
    input: R,
    flags: liblzma_sys::lzma_stream_flags,
    first: Vec<u8>,
    header: Header,
    budget: u64,
}

/// Look at the start of `input`: an xz stream whose first block header carries both sizes,
/// whose first block fits the budget, and whose image is not a tar archive, is decoded block by
/// block; anything else goes back whole (read bytes first) to the sequential path, which also
/// reports what is wrong with it.
pub fn probe<R: Read>(input: R) -> io::Result<Probe<R>> {
    probe_with(input, budget())
}

/// [`probe`] with a given budget of compressed bytes in flight.
pub fn probe_with<R: Read>(mut input: R, budget: u64) -> io::Result<Probe<R>> {
    let mut read = vec![0u8; HEADER_LEN + 1];
    let n = read_full(&mut input, &mut read)?;
    read.truncate(n);
    let other = |read: Vec<u8>, input: R| Ok(Probe::Other(Cursor::new(read).chain(input)));
    if n < HEADER_LEN + 1 || read[..MAGIC.len()] != MAGIC || read[HEADER_LEN] == 0 {
        return other(read, input);
    }
    let head: [u8; HEADER_LEN] = read[..HEADER_LEN].try_into().expect("12 bytes");
    let Ok(flags) = format::stream_header(&head) else {
        return other(read, input);
    };
    let hlen = block::header_len(read[HEADER_LEN]);
    read.resize(HEADER_LEN + hlen, 0);
    let n = read_full(&mut input, &mut read[HEADER_LEN + 1..])?;
    if n < hlen - 1 {
        read.truncate(HEADER_LEN + 1 + n);
        return other(read, input);
    }
    let header = match Header::parse(&read[HEADER_LEN..], flags.check) {
        Ok(h) => h,
        Err(_) => return other(read, input),
    };
    let total = match (header.total_len(), header.uncompressed) {
        (Some(t), Some(_)) if t <= budget => t as usize,
        _ => return other(read, input),
    };
    read.resize(HEADER_LEN + total, 0);
    let n = read_full(&mut input, &mut read[HEADER_LEN + hlen..])?;
    if n < total - hlen {
        read.truncate(HEADER_LEN + hlen + n);
        return other(read, input);
    }
    // A tar archive inside (dd-txz) is read entry by entry by the sequential path.
    let mut start = [0u8; 512];
    let peeked = Decoder::new(&read[HEADER_LEN..HEADER_LEN + hlen], flags.check)
        .and_then(|mut d| d.decode(&read[HEADER_LEN + hlen..], &mut start));
    match peeked {
        Ok((_, made)) if !crate::source::detect::is_tar(&start[..made]) => {}
        _ => return other(read, input),
    }
    let first = read.split_off(HEADER_LEN);
    Ok(Probe::Blocks(Blocks {
        input,
        flags,
        first,
        header,
        budget,
    }))
}

/// A copy of `bytes` in a mapped buffer.
fn mapped(bytes: &[u8]) -> AlignedBuf {
    let mut b = AlignedBuf::new(bytes.len());
    b.full_mut()[..bytes.len()].copy_from_slice(bytes);
    b.len = bytes.len();
    b
}

/// Where decoded pieces go: buffers come from `free` and go to `out` with their offset.
pub struct Sink<'a> {
    pub free: &'a Receiver<AlignedBuf>,
    pub out: &'a Sender<Piece>,
    pub progress: &'a Progress,
    /// The target's size and its name, for "larger than the target".
    pub limit: Option<(u64, String)>,
}

/// How a run ended.
pub enum Ended {
    /// The whole stream decoded: the image's size.
    Done(u64),
    /// The writer stopped taking pieces; it says why.
    WriterGone,
}

enum Job<R> {
    /// A block read whole (header first), decoded into pieces at `at`.
    Whole {
        at: u64,
        /// Mapped, not from the allocator: unmapped when done, so blocks of every size never
        /// leave the heap fragmented above the budget.
        data: AlignedBuf,
        header: Header,
        /// The check type of the block's stream (concatenated streams may differ).
        check: u32,
        /// Dropped once the first piece is out (the writer checks the image on it).
        first: Option<Sender<()>>,
    },
    /// A block decoded straight from the input, which comes back with the block's sizes.
    Stream {
        at: u64,
        header: Vec<u8>,
        check: u32,
        input: R,
        /// The input, and the block's (compressed, uncompressed) sizes unless it failed (the
        /// worker has recorded why).
        back: Sender<(R, Option<(u64, u64)>)>,
    },
}

/// State the reader and the workers share.
struct Shared {
    budget: Mutex<u64>,
    freed: Condvar,
    stop: AtomicBool,
    writer_gone: AtomicBool,
    error: Mutex<Option<io::Error>>,
}

impl Shared {
    fn fail(&self, e: Option<io::Error>) {
        if let Some(e) = e {
            self.error.lock().expect("lock").get_or_insert(e);
        } else {
            self.writer_gone.store(true, Ordering::SeqCst);
        }
        self.stop.store(true, Ordering::SeqCst);
        self.freed.notify_all();
    }

    /// Wait until `n` bytes of budget are free and take them; false once stopped.
    fn take(&self, n: u64) -> bool {
        let mut free = self.budget.lock().expect("lock");
        while *free < n && !self.stop.load(Ordering::SeqCst) {
            free = self.freed.wait(free).expect("lock");
        }
        if self.stop.load(Ordering::SeqCst) {
            return false;
        }
        *free -= n;
        true
    }

    fn give(&self, n: u64) {
        *self.budget.lock().expect("lock") += n;
        self.freed.notify_all();
    }
}

fn too_large(limit: &Option<(u64, String)>, end: u64) -> io::Result<()> {
    match limit {
        Some((l, what)) if end > *l => Err(io::Error::other(TooLarge(format!(
            "the image is larger than {what}: its xz blocks hold more"
        )))),
        _ => Ok(()),
    }
}

fn corrupt(at: u64, e: io::Error) -> io::Error {
    if e.kind() == io::ErrorKind::UnexpectedEof || TooLarge::is(&e) {
        return e;
    }
    io::Error::new(
        e.kind(),
        format!("corrupt xz stream in the block at image byte {at}: {e}"),
    )
}

impl<R: Read + Send> Blocks<R> {
    /// Decode the whole stream (and any streams concatenated to it) into `sink`.
    pub fn run(self, sink: &Sink) -> io::Result<Ended> {
        let threads = env_or(
            THREADS_ENV,
            std::thread::available_parallelism().map_or(1, |n| n.get().min(MAX_THREADS)) as u64,
        )
        .max(1) as usize;
        let shared = Shared {
            budget: Mutex::new(self.budget),
            freed: Condvar::new(),
            stop: AtomicBool::new(false),
            writer_gone: AtomicBool::new(false),
            error: Mutex::new(None),
        };
        let (jobs_tx, jobs_rx) = bounded::<Job<BufReader<R>>>(1);
        let res = std::thread::scope(|s| {
            for i in 0..threads {
                let jobs = jobs_rx.clone();
                let shared = &shared;
                std::thread::Builder::new()
                    .name(format!("xz-{i}"))
                    .spawn_scoped(s, move || worker(&jobs, sink, shared))
                    .expect("spawning an xz worker");
            }
            drop(jobs_rx);
            let r = self.read_blocks(&jobs_tx, sink, &shared);
            if r.is_err() {
                // Stop the workers; the reader's own error is returned below.
                shared.stop.store(true, Ordering::SeqCst);
                shared.freed.notify_all();
            }
            drop(jobs_tx);
            r
        });
        // A worker's error came first: the reader only stops after it.
        if let Some(e) = shared.error.lock().expect("lock").take() {
            return Err(e);
        }
        if shared.writer_gone.load(Ordering::SeqCst) {
            return Ok(Ended::WriterGone);
        }
        res.map(Ended::Done)
    }

    /// The reader: walk the container, hand blocks out, check the index and footer.
    fn read_blocks(
        self,
        jobs: &Sender<Job<BufReader<R>>>,
        sink: &Sink,
        shared: &Shared,
    ) -> io::Result<u64> {
        let budget = self.budget;
        let mut input = Some(BufReader::with_capacity(READ_BUF, self.input));
        let mut flags = self.flags;
        let mut at = 0u64;
        let mut records = Vec::new();

        // The first block, read by the probe; nothing else goes out before its first piece.
        let first_len = self.first.len() as u64;
        let unc = self.header.uncompressed.expect("probed");
        too_large(&sink.limit, unc)?;
        if !shared.take(first_len) {
            return Ok(at);
        }
        let (gate_tx, gate_rx) = bounded::<()>(0);
        let job = Job::Whole {
            at,
            data: mapped(&self.first),
            header: self.header,
            check: flags.check,
            first: Some(gate_tx),
        };
        if jobs.send(job).is_err() {
            return Ok(at);
        }
        let _ = gate_rx.recv();
        records.push(Record {
            unpadded: self
                .header
                .unpadded_len(self.header.compressed.expect("probed")),
            uncompressed: unc,
        });
        at += unc;

        loop {
            // The blocks of one stream.
            loop {
                if shared.stop.load(Ordering::SeqCst) {
                    return Ok(at);
                }
                let r = input.as_mut().expect("input is home");
                let mut b = [0u8; 1];
                format::read_exact(r, &mut b)?;
                if b[0] == 0 {
                    break;
                }
                let mut hbytes = vec![0u8; block::header_len(b[0])];
                hbytes[0] = b[0];
                format::read_exact(r, &mut hbytes[1..])?;
                let header = Header::parse(&hbytes, flags.check).map_err(|e| corrupt(at, e))?;
                match (header.total_len(), header.uncompressed) {
                    (Some(total), Some(unc)) if total <= budget => {
                        too_large(&sink.limit, at + unc)?;
                        if !shared.take(total) {
                            return Ok(at);
                        }
                        let mut data = AlignedBuf::new(total as usize);
                        data.len = total as usize;
                        data.full_mut()[..header.len].copy_from_slice(&hbytes);
                        format::read_exact(r, &mut data.full_mut()[header.len..total as usize])?;
                        let job = Job::Whole {
                            at,
                            data,
                            header,
                            check: flags.check,
                            first: None,
                        };
                        if jobs.send(job).is_err() {
                            return Ok(at);
                        }
                        records.push(Record {
                            unpadded: header.unpadded_len(header.compressed.expect("sized")),
                            uncompressed: unc,
                        });
                        at += unc;
                    }
                    _ => {
                        // Lend the input to a worker and wait for it to come back.
                        let (back_tx, back_rx) = bounded(1);
                        let job = Job::Stream {
                            at,
                            header: hbytes,
                            check: flags.check,
                            input: input.take().expect("input is home"),
                            back: back_tx,
                        };
                        if jobs.send(job).is_err() {
                            return Ok(at);
                        }
                        let Ok((r, sizes)) = back_rx.recv() else {
                            return Ok(at);
                        };
                        input = Some(r);
                        let Some((comp, unc)) = sizes else {
                            return Ok(at); // the worker recorded the error
                        };
                        records.push(Record {
                            unpadded: header.unpadded_len(comp),
                            uncompressed: unc,
                        });
                        at += unc;
                    }
                }
            }
            let r = input.as_mut().expect("input is home");
            let index_len = format::check_index(r, &records)?;
            format::check_footer(r, &flags, index_len)?;
            records.clear();
            match format::next_stream(r, at)? {
                None => return Ok(at),
                Some(h) => flags = format::stream_header(&h)?,
            }
        }
    }
}

/// A worker: decode the blocks it is handed into pieces.
fn worker<R: BufRead>(jobs: &Receiver<Job<R>>, sink: &Sink, shared: &Shared) {
    // One decoder for all the worker's blocks: its dictionary is allocated once.
    let mut dec: Option<Decoder> = None;
    for job in jobs.iter() {
        match job {
            Job::Whole {
                at,
                data,
                header,
                check,
                first,
            } => {
                let n = data.len as u64;
                if !shared.stop.load(Ordering::SeqCst) {
                    let r = whole(&mut dec, at, data.data(), &header, check, sink, first);
                    if let Err(e) = r {
                        shared.fail(e.map(|e| corrupt(at, e)));
                    }
                }
                drop(data);
                shared.give(n);
            }
            Job::Stream {
                at,
                header,
                check,
                mut input,
                back,
            } => {
                let r = streamed(&mut dec, at, &header, &mut input, check, sink);
                let sizes = r.map_err(|e| shared.fail(e.map(|e| corrupt(at, e)))).ok();
                let _ = back.send((input, sizes));
            }
        }
    }
}

/// `Err(None)`: the writer is gone (no error of ours); `Err(Some(e))`: this block failed.
type Step<T> = Result<T, Option<io::Error>>;

/// One output piece being filled.
struct Out<'a, 'b> {
    sink: &'a Sink<'b>,
    at: u64,
    buf: Option<AlignedBuf>,
    first: Option<Sender<()>>,
}

impl Out<'_, '_> {
    /// The unfilled part of the current buffer (taking one from the pool if needed).
    fn room(&mut self) -> Step<&mut [u8]> {
        if self.buf.is_none() {
            let mut b = self.sink.free.recv().map_err(|_| None)?;
            b.len = 0;
            self.buf = Some(b);
        }
        let b = self.buf.as_mut().expect("buffer");
        let (len, end) = (b.len, piece().min(b.capacity()));
        Ok(&mut b.full_mut()[len..end])
    }

    fn made(&mut self, n: usize) -> Step<()> {
        let b = self.buf.as_mut().expect("buffer");
        b.len += n;
        if b.len == piece().min(b.capacity()) {
            self.send()?;
        }
        Ok(())
    }

    fn send(&mut self) -> Step<()> {
        let Some(b) = self.buf.take() else {
            return Ok(());
        };
        if b.len == 0 {
            return Ok(());
        }
        let n = b.len as u64;
        too_large(&self.sink.limit, self.at + n).map_err(Some)?;
        Progress::add(&self.sink.progress.decoded, n);
        self.sink
            .out
            .send(Piece {
                at: self.at,
                buf: b,
            })
            .map_err(|_| None)?;
        self.at += n;
        self.first = None;
        Ok(())
    }
}

/// The worker's decoder, started on the block of `header`.
fn decoder<'a>(
    dec: &'a mut Option<Decoder>,
    header: &[u8],
    check: u32,
) -> io::Result<&'a mut Decoder> {
    match dec {
        Some(d) => d.start(header, check)?,
        None => *dec = Some(Decoder::new(header, check)?),
    }
    Ok(dec.as_mut().expect("decoder"))
}

fn whole(
    dec: &mut Option<Decoder>,
    at: u64,
    data: &[u8],
    header: &Header,
    check: u32,
    sink: &Sink,
    first: Option<Sender<()>>,
) -> Step<()> {
    let d = decoder(dec, &data[..header.len], check).map_err(Some)?;
    let mut input = &data[header.len..];
    let mut out = Out {
        sink,
        at,
        buf: None,
        first,
    };
    while !d.finished() {
        let room = out.room()?;
        let (used, made) = d.decode(input, room).map_err(Some)?;
        input = &input[used..];
        if used == 0 && made == 0 && !d.finished() {
            return Err(Some(io::Error::new(
                io::ErrorKind::InvalidData,
                "the block's data ends before its declared size",
            )));
        }
        out.made(made)?;
    }
    out.send()?;
    if !input.is_empty() {
        return Err(Some(io::Error::new(
            io::ErrorKind::InvalidData,
            "the block is longer than its header says",
        )));
    }
    Ok(())
}

fn streamed<R: BufRead>(
    dec: &mut Option<Decoder>,
    at: u64,
    header: &[u8],
    input: &mut R,
    check: u32,
    sink: &Sink,
) -> Step<(u64, u64)> {
    let d = decoder(dec, header, check).map_err(Some)?;
    let mut out = Out {
        sink,
        at,
        buf: None,
        first: None,
    };
    while !d.finished() {
        let avail = input.fill_buf().map_err(Some)?;
        if avail.is_empty() {
            return Err(Some(format::truncated()));
        }
        let room = out.room()?;
        let (used, made) = d.decode(avail, room).map_err(Some)?;
        input.consume(used);
        out.made(made)?;
    }
    out.send()?;
    Ok(d.sizes())
}

#[cfg(test)]
mod tests {
    use super::super::testdata::{data, multi_block};
    use super::*;

    fn single_block(d: &[u8]) -> Vec<u8> {
        super::super::testdata::single_block(d, 1)
    }

    /// Decode through `Blocks::run`, the pieces put back together by offset.
    fn run(x: &[u8], budget: u64, limit: Option<u64>) -> io::Result<Vec<u8>> {
        let Probe::Blocks(b) = probe_with(x, budget)? else {
            panic!("not decoded block by block");
        };
        let (free_tx, free_rx) = bounded::<AlignedBuf>(5);
        for _ in 0..5 {
            free_tx.send(AlignedBuf::new(1 << 20)).unwrap();
        }
        let (out_tx, out_rx) = bounded::<Piece>(3);
        let collect = std::thread::spawn(move || {
            let mut img = Vec::new();
            let mut first = true;
            for p in out_rx {
                assert!(!first || p.at == 0, "the first piece is the image's start");
                first = false;
                let end = p.at as usize + p.buf.len;
                if img.len() < end {
                    img.resize(end, 0);
                }
                img[p.at as usize..end].copy_from_slice(p.buf.data());
                let _ = free_tx.send(p.buf);
            }
            img
        });
        let progress = Progress::default();
        let sink = Sink {
            free: &free_rx,
            out: &out_tx,
            progress: &progress,
            limit: limit.map(|l| (l, format!("the target ({l} bytes)"))),
        };
        let r = b.run(&sink);
        drop(out_tx);
        let img = collect.join().unwrap();
        match r? {
            Ended::Done(n) => {
                assert_eq!(n as usize, img.len());
                Ok(img)
            }
            Ended::WriterGone => panic!("the collector never stops early"),
        }
    }

    fn err(x: &[u8]) -> String {
        format!("{}", run(x, 16 << 20, None).unwrap_err())
    }

    #[test]
    fn multi_block_streams_decode_byte_identical() {
        let d = data(300_000);
        let m = multi_block(&d, 256 << 10);
        assert_eq!(run(&m, 16 << 20, None).unwrap(), d);
        // A budget smaller than a block: those blocks are decoded from the input by one
        // worker, the rest in parallel; the same bytes.
        assert_eq!(run(&m, 40 << 10, None).unwrap(), d);
    }

    #[test]
    fn concatenated_streams_padding_and_unsized_blocks() {
        let d = data(200_000);
        let (a, b) = d.split_at(d.len() / 3);
        let mut x = multi_block(a, 128 << 10);
        let mut y = x.clone();
        y.extend(multi_block(b, 128 << 10));
        assert_eq!(
            run(&y, 16 << 20, None).unwrap(),
            d,
            "two multi-block streams, no padding"
        );
        let mut y = x.clone();
        y.extend_from_slice(&[0u8; 8]); // stream padding
        y.extend(multi_block(b, 128 << 10));
        assert_eq!(
            run(&y, 16 << 20, None).unwrap(),
            d,
            "two multi-block streams"
        );
        x.extend_from_slice(&[0u8; 8]); // stream padding
        x.extend(single_block(b)); // a block whose header has no sizes
        assert_eq!(run(&x, 16 << 20, None).unwrap(), d);
    }

    #[test]
    fn what_is_not_for_blocks_goes_back_whole() {
        let d = data(100_000);
        for x in [single_block(&d), b"not xz at all".to_vec(), Vec::new()] {
            let Probe::Other(mut r) = probe_with(&x[..], 16 << 20).unwrap() else {
                panic!("probed as blocks");
            };
            let mut back = Vec::new();
            r.read_to_end(&mut back).unwrap();
            assert_eq!(back, x, "the same bytes come back");
        }
        // A tar archive inside is for the sequential path (dd-txz).
        let mut t = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_ustar();
        h.set_size(d.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        t.append_data(&mut h, "disk.img", &d[..]).unwrap();
        let x = multi_block(&t.into_inner().unwrap(), 256 << 10);
        assert!(matches!(
            probe_with(&x[..], 16 << 20).unwrap(),
            Probe::Other(_)
        ));
    }

    #[test]
    fn corrupt_truncated_garbage_and_too_large_fail() {
        let d = data(300_000);
        let m = multi_block(&d, 256 << 10);
        let mut bad = m.clone();
        let mid = bad.len() / 2;
        bad[mid] ^= 0x55;
        assert!(err(&bad).contains("corrupt"), "{}", err(&bad));
        let e = err(&m[..m.len() * 2 / 3]);
        assert!(e.contains("truncated"), "{e}");
        let e = err(&m[..m.len() - 6]); // the footer cut
        assert!(e.contains("truncated"), "{e}");
        let mut g = m.clone();
        g.extend_from_slice(b"<html>");
        let e = err(&g);
        assert!(e.contains("trailing garbage"), "{e}");
        // The index CRC32 no longer matches (the footer's backward size finds the index).
        let mut idx = m.clone();
        let at = idx.len() - 12 - 5;
        idx[at] ^= 1;
        assert!(err(&idx).contains("index"), "{}", err(&idx));
        let e = format!(
            "{}",
            run(&m, 16 << 20, Some(d.len() as u64 - 1)).unwrap_err()
        );
        assert!(e.contains("larger than the target"), "{e}");
        assert_eq!(run(&m, 16 << 20, Some(d.len() as u64)).unwrap(), d);
    }
}
