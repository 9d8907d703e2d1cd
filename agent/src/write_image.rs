//! The dd path: stream a disk image from a source onto a disk (or disk image file).
//!
//! Three threads overlap the work, joined by bounded queues of large buffers so that memory
//! stays bounded whatever the image size:
//!
//! ```text
//! fetch (http/file, hash, count) --1 MiB chunks x4--> decode (detect, check, decompress,
//! untar) --4 MiB aligned buffers x3--> write (zero-skip, O_DIRECT), first MiB held back
//! ```
//!
//! Order of events on the disk: nothing is touched until the decoder has seen the real format
//! and it matches the declared one. Then both ends are wiped (no old table can boot a partial
//! image), everything after the first MiB is written and synced, the stream is verified (end
//! of stream, size, checksums), and only then is the first MiB written and synced. On any
//! failure after the wipe, both ends are wiped again.

use anyhow::{anyhow, bail, Context, Result};
use crossbeam_channel::{bounded, Receiver, Sender};
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::blockdev::{self, RootFound, Target};
use crate::error::{Kind, KindExt};
use crate::grow::{self, GrowOutcome};
use crate::io::{
    flush, AlignedBuf, ChannelReader, Digests, EarlyFlush, HashReader, LimitReader, Piece,
    Progress, Snapshot, TooLarge, ZeroMode, ZeroSkipWriter,
};
use crate::source::xz::{self, parallel::Probe};
use crate::source::{self, decode, kind::split_dd, magic, FetchOptions, Found, SourceType};

const MIB: usize = 1 << 20;
const FETCH_CHUNK: usize = MIB;
const FETCH_QUEUE: usize = 4;
const WRITE_BUF: usize = 4 * MIB;
const WRITE_QUEUE: usize = 3;
/// Phase timings, logged when DEPLOYER_TIMING is set (for finding where the time goes).
struct Phases {
    on: bool,
    t0: Instant,
    last: Instant,
}

impl Phases {
    fn new() -> Self {
        let now = Instant::now();
        Phases {
            on: std::env::var_os("DEPLOYER_TIMING").is_some(),
            t0: now,
            last: now,
        }
    }

    fn mark(&mut self, what: &str) {
        if self.on {
            let now = Instant::now();
            tracing::info!(
                "timing: {what}: {:.3}s (at {:.3}s)",
                (now - self.last).as_secs_f64(),
                (now - self.t0).as_secs_f64()
            );
            self.last = now;
        }
    }
}

/// What to write where.
pub struct Request {
    /// A uri or path (no type prefix).
    pub uri: String,
    /// The declared dd type; `None` to accept whatever the bytes are.
    pub declared: Option<SourceType>,
    pub target: PathBuf,
    pub sha256: Option<String>,
    pub sha512: Option<String>,
    /// Expected size of the source as served.
    pub size: Option<u64>,
    pub grow: bool,
    /// Sync the body before the first MiB goes down, and then that (a disk that boots only
    /// once all of it is there). Off for a scratch copy nobody boots (`deployer inspect`).
    pub durable: bool,
    /// Write data that is not a disk image (no partition table, no filesystem signature in its
    /// first MiB) as it is; otherwise such data is refused before a byte is written.
    pub raw_data: bool,
    pub fetch: FetchOptions,
    /// Other URLs of the same image, tried in order when the one in use fails for good.
    pub mirrors: Vec<String>,
    /// Called with the counters about four times a second, and once at the end.
    pub on_progress: Option<Box<dyn FnMut(Snapshot) + Send>>,
}

impl Request {
    /// From curtin's source string (`dd-gz:http://...`) or a bare uri/path.
    pub fn new(source: &str, target: impl Into<PathBuf>) -> Self {
        let (declared, uri) = split_dd(source);
        Request {
            uri: uri.to_string(),
            declared,
            target: target.into(),
            sha256: None,
            sha512: None,
            size: None,
            grow: true,
            durable: true,
            raw_data: false,
            fetch: FetchOptions::default(),
            mirrors: Vec::new(),
            on_progress: None,
        }
    }
}

/// The result, as `--json` prints it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Summary {
    pub source: String,
    pub target: PathBuf,
    /// The curtin type the bytes turned out to be.
    pub detected_type: Option<String>,
    pub bytes_read: u64,
    pub image_size: u64,
    pub bytes_written: u64,
    pub bytes_skipped: u64,
    pub root: Option<RootFound>,
    pub grown: bool,
    pub grow: String,
    pub seconds: f64,
}

/// Write the image; on success the disk holds it byte for byte, the kernel knows its
/// partitions, and the root is found (and grown when asked).
pub fn write_image(mut req: Request) -> Result<Summary> {
    let t0 = Instant::now();
    let mut phases = Phases::new();
    let mut target = blockdev::open_target(&req.target).kind(Kind::Storage)?;
    let created = target.created;
    let mut state = WriteState {
        wiped: false,
        identified: None,
    };
    let (uri, mirrors, fetch) = (req.uri.clone(), req.mirrors.clone(), req.fetch.clone());
    let mut passes = 0;
    // An object replaced on the server mid-stream runs this pass again from byte 0 over the
    // new one: a new decode and a new disk pass.
    let res = source::with_restarts(&uri, &mirrors, &fetch, |opened| {
        passes += 1;
        if passes > 1 && target.fresh {
            // "Reads as zero" no longer holds for what the last pass wrote.
            target.file.set_len(0).context("emptying the image file")?;
        }
        write_pass(&mut req, &mut target, opened, &mut state, &mut phases)
    });
    let (found, digests, image_size, progress) = match res {
        Ok(v) => v,
        Err(e) => {
            if created {
                // Nothing was there before: leave nothing (a 404 used to leave an empty file).
                drop(target);
                remove_created(&req.target);
                return Err(e);
            }
            if state.wiped {
                let size = blockdev::size_of(&target.file).unwrap_or(0);
                if let Err(w) = blockdev::wipe_ends(&target.file, size) {
                    tracing::error!("wiping {} after the failure: {w}", req.target.display());
                }
            }
            return Err(e);
        }
    };
    drop(target);
    let snap = progress.snapshot();
    if let Some(cb) = &mut req.on_progress {
        cb(snap);
    }
    tracing::info!(
        "wrote {} ({image_size} bytes; {} written, {} skipped as zeros) from {} bytes of {}",
        req.target.display(),
        snap.written,
        snap.skipped,
        digests.size,
        req.uri
    );

    let settled = if state.identified.is_none() {
        // Deliberate raw data (--raw-data): no table, so no root to find or grow.
        Ok((
            None,
            GrowOutcome::Skipped("raw data: no partition table or filesystem".into()),
        ))
    } else {
        settle_and_grow(&req.target, req.grow)
    };
    let (root, grow_outcome) = match settled {
        Ok(v) => v,
        Err(e) => {
            // The image is on the disk but unusable (no root, a failed grow): leave nothing
            // that a firmware would try to boot, as after any other failure.
            if created {
                remove_created(&req.target);
            } else {
                wipe_after_failure(&req.target);
            }
            return Err(e);
        }
    };
    phases.mark("partitions, root and grow");
    Ok(Summary {
        source: req.uri.clone(),
        target: req.target.clone(),
        detected_type: found.source_type().map(|t| t.prefix().to_string()),
        bytes_read: digests.size,
        image_size,
        bytes_written: snap.written,
        bytes_skipped: snap.skipped,
        grown: matches!(grow_outcome, GrowOutcome::Grown { .. }),
        grow: grow_outcome.to_string(),
        root,
        seconds: t0.elapsed().as_secs_f64(),
    })
}

type Written = (Found, Digests, u64, Arc<Progress>);

/// Remove the image file this run created, after a failure.
fn remove_created(path: &std::path::Path) {
    if let Err(e) = std::fs::remove_file(path) {
        tracing::error!("removing {} after the failure: {e}", path.display());
    }
}

/// One pass over the source: checks of what it announces, then the stream onto the disk.
fn write_pass(
    req: &mut Request,
    target: &mut Target,
    opened: source::Opened,
    state: &mut WriteState,
    phases: &mut Phases,
) -> Result<Written> {
    if let (Some(want), Some(len)) = (req.size, opened.len) {
        if want != len {
            return Err(anyhow!(
                "the source {} is {len} bytes, not the declared size {want}",
                req.uri
            ))
            .kind(Kind::Source);
        }
    }
    let progress = Arc::new(Progress::default());
    if let Some(l) = opened.len {
        Progress::add(&progress.source_total, l);
    }
    phases.mark("open target and source");
    let (found, digests, size) = stream(
        req,
        target,
        opened.reader,
        opened.len,
        &progress,
        state,
        phases,
    )?;
    Ok((found, digests, size, progress))
}

/// Zero both ends of a target that is no longer open (the partitions were in use meanwhile).
fn wipe_after_failure(path: &Path) {
    let r = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|f| blockdev::wipe_ends(&f, blockdev::size_of(&f)?));
    if let Err(w) = r {
        tracing::error!("wiping {} after the failure: {w}", path.display());
    }
}

/// Re-read the table, find the root, grow it. A disk image file gets no partition nodes: the
/// root is not looked for there (attach it to a loop device to inspect it).
fn settle_and_grow(target: &Path, grow: bool) -> Result<(Option<RootFound>, GrowOutcome)> {
    let is_block = std::fs::metadata(target)
        .map(|m| std::os::unix::fs::FileTypeExt::is_block_device(&m.file_type()))
        .unwrap_or(false);
    if !is_block {
        return Ok((
            None,
            GrowOutcome::Skipped("the target is a file, not a block device".into()),
        ));
    }
    let parts = blockdev::reread_partitions(target).kind(Kind::Storage)?;
    let parts = grow::with_logical_volumes(&parts);
    let root = blockdev::find_root(&parts).kind(Kind::Image)?;
    tracing::info!(
        "root filesystem: {} (has /{})",
        root.device.display(),
        root.marker
    );
    let outcome = if grow {
        grow::grow_root(target, &root).kind(Kind::Storage)?
    } else {
        GrowOutcome::Skipped("--no-grow".into())
    };
    Ok((Some(root), outcome))
}

struct WriteState {
    /// Both ends have been wiped: from here a failure must wipe them again.
    wiped: bool,
    /// What the image's first MiB holds (a partition table, a filesystem), if anything.
    identified: Option<&'static str>,
}

fn stream(
    req: &mut Request,
    target: &mut Target,
    reader: Box<dyn Read + Send>,
    source_len: Option<u64>,
    progress: &Arc<Progress>,
    state: &mut WriteState,
    phases: &mut Phases,
) -> Result<(Found, Digests, u64)> {
    let (chunk_tx, chunk_rx) = bounded::<io::Result<Vec<u8>>>(FETCH_QUEUE);
    let (buf_tx, buf_rx) = bounded::<Piece>(WRITE_QUEUE);
    let (free_tx, free_rx) = bounded::<AlignedBuf>(WRITE_QUEUE + 2);
    for _ in 0..WRITE_QUEUE + 2 {
        free_tx.send(AlignedBuf::new(WRITE_BUF)).expect("pool");
    }

    let want256 = req.sha256.is_some();
    let want512 = req.sha512.is_some();
    let p = progress.clone();
    let fetch = std::thread::Builder::new()
        .name("fetch".into())
        .spawn(move || {
            let mut r = HashReader::new(reader, want256, want512);
            loop {
                let mut chunk = vec![0u8; FETCH_CHUNK];
                match decode::read_full(&mut r, &mut chunk) {
                    Ok(0) => break,
                    Ok(n) => {
                        chunk.truncate(n);
                        Progress::add(&p.read, n as u64);
                        if chunk_tx.send(Ok(chunk)).is_err() {
                            break;
                        }
                    }
                    Err(e) => {
                        let _ = chunk_tx.send(Err(e));
                        break;
                    }
                }
            }
            r.digests()
        })?;

    let declared = req.declared;
    let limit = target.size;
    let target_name = format!("the target {}", req.target.display());
    let p = progress.clone();
    let decoder =
        std::thread::Builder::new()
            .name("decode".into())
            .spawn(move || -> Result<Found> {
                let input = ChannelReader::new(chunk_rx);
                let limit = limit.map(|l| (l, format!("{target_name} ({l} bytes)")));
                // A multi-block xz stream is decoded block by block on several threads, each
                // block written at its own offset; anything else by the sequential decoders.
                let input = if matches!(declared, None | Some(SourceType::DdXz)) {
                    match xz::parallel::probe(input).context("reading the start of the source")? {
                        Probe::Blocks(b) => {
                            let sink = xz::parallel::Sink {
                                free: &free_rx,
                                out: &buf_tx,
                                progress: &p,
                                limit,
                            };
                            return match b.run(&sink) {
                                Ok(_) => Ok(Found {
                                    compression: source::Compression::Xz,
                                    tar: false,
                                }),
                                Err(e) if TooLarge::is(&e) => Err(e).kind(Kind::Storage),
                                Err(e) => Err(e).context("decoding the image"),
                            };
                        }
                        Probe::Other(i) => i,
                    }
                } else {
                    io::Cursor::new(Vec::new()).chain(input)
                };
                decode::with_image(input, declared, |image, found| {
                    // An uncompressed image's length is the source's: refuse it before writing
                    // anything. (Any other image that runs past the end of the disk fails while
                    // streaming; either way it is a storage error.)
                    let raw = found.compression == source::Compression::None && !found.tar;
                    if let (true, Some((disk, what)), Some(len)) = (raw, &limit, source_len) {
                        if len > *disk {
                            return Err(anyhow!("the image ({len} bytes) is larger than {what}"))
                                .kind(Kind::Storage);
                        }
                    }
                    let mut image: Box<dyn Read> = match &limit {
                        Some((l, what)) => Box::new(LimitReader::new(image, *l, what.clone())),
                        None => Box::new(image),
                    };
                    let mut at = 0u64;
                    loop {
                        let Ok(mut b) = free_rx.recv() else {
                            return Ok(());
                        };
                        let n = match decode::read_full(&mut image, b.full_mut()) {
                            Ok(n) => n,
                            Err(e) if TooLarge::is(&e) => return Err(e).kind(Kind::Storage),
                            Err(e) => return Err(e).context("decoding the image"),
                        };
                        if n == 0 {
                            return Ok(());
                        }
                        b.len = n;
                        Progress::add(&p.decoded, n as u64);
                        if buf_tx.send(Piece { at, buf: b }).is_err() {
                            return Ok(()); // the writer failed; it reports why
                        }
                        at += n as u64;
                    }
                })
            })?;

    let write_res = write_loop(req, target, &buf_rx, &free_tx, progress, state);
    drop(buf_rx);
    drop(free_tx);
    if let Some(sig) = crate::signals::received() {
        // Stopped: the fetch thread may sit in a stalled read for a minute; the process ends
        // soon, so the threads are left to it and the caller wipes the ends now.
        return Err(crate::signals::interrupted(sig));
    }
    let dec_res = decoder
        .join()
        .map_err(|_| anyhow!("the decode thread panicked"))?;
    let digests = fetch
        .join()
        .map_err(|_| anyhow!("the fetch thread panicked"))?;
    // The decoder's error explains a writer that ran dry, so it comes first.
    let found = dec_res
        .with_context(|| format!("reading the image from {}", req.uri))
        .kind(Kind::Source)?;
    let (first_mib, image_size, writer_mode) = write_res?;
    phases.mark("stream (fetch, decode, write)");
    verify(req, &digests).kind(Kind::Source)?;
    if image_size == 0 {
        return Err(anyhow!("the image is empty")).kind(Kind::Source);
    }

    // Everything but the first MiB is on disk, synced, and the stream verified: now the
    // first MiB (MBR, primary GPT) makes the disk bootable.
    let durable = req.durable;
    let sync = |what: &str| -> Result<()> {
        if !durable {
            return Ok(());
        }
        target
            .file
            .sync_all()
            .with_context(|| format!("syncing {} ({what})", req.target.display()))
    };
    sync("the image body")?;
    phases.mark("sync the image body");
    use std::os::unix::fs::FileExt;
    target
        .file
        .write_all_at(&first_mib, 0)
        .with_context(|| format!("writing the first MiB of {}", req.target.display()))
        .kind(Kind::Storage)?;
    if target.fresh && target.size.is_none() {
        target
            .file
            .set_len(image_size)
            .context("sizing the image file")?;
    }
    sync("the first MiB")?;
    phases.mark("write and sync the first MiB");
    tracing::debug!("zero handling: {writer_mode:?}");
    Ok((found, digests, image_size))
}

fn verify(req: &Request, d: &Digests) -> Result<()> {
    source::Expect {
        sha256: req.sha256.clone(),
        sha512: req.sha512.clone(),
        size: req.size,
    }
    .check(&req.uri, d)
}

/// The writer: returns the held first MiB, the image size and the zero mode used.
fn write_loop(
    req: &mut Request,
    target: &Target,
    rx: &Receiver<Piece>,
    free: &Sender<AlignedBuf>,
    progress: &Progress,
    state: &mut WriteState,
) -> Result<(Vec<u8>, u64, ZeroMode)> {
    let mode = if target.fresh {
        ZeroMode::KnownZero
    } else {
        ZeroMode::Punch
    };
    let mut w = ZeroSkipWriter::new(&target.direct, &target.file, mode, progress);
    // Data that lands in a page cache (a loop device's backing file, an image file) is sent
    // on to the disk as it comes, so that the final sync has little left to write.
    let mut writeback = match target.page_cache.as_ref().map(File::try_clone) {
        Some(Ok(f)) => Some(writeback_thread(f).context("starting the writeback thread")?),
        _ => None,
    };
    let mut counted = 0;

    // The first MiB as it will go down at the end; pieces may come out of order (xz blocks
    // decoded in parallel), but the one at offset 0 always comes first.
    let mut first = Vec::new();
    let mut seen_first = false;
    let mut end: u64 = 0;
    let mut last_cb = Instant::now();
    let name = req.target.display().to_string();
    loop {
        // A signal stops the write between buffers; the caller wipes the ends as on failure.
        crate::signals::check()?;
        let Piece { at, buf: b } = match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(p) => p,
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => continue,
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
        };
        let data = b.data();
        if !seen_first {
            assert_eq!(at, 0, "the image's start comes first");
            seen_first = true;
            state.identified = magic::identify(data);
            if !req.raw_data {
                // A short buffer is the whole image (the decoder fills each one).
                check_disk_image(data, data.len() < WRITE_BUF).kind(Kind::Source)?;
            }
            check_sector_size(data, target.sector).kind(Kind::Storage)?;
            // The first buffer proves the format matched: only now is the disk touched.
            let size = target.size.unwrap_or(0);
            blockdev::wipe_ends(&target.file, size)
                .with_context(|| format!("wiping the partition tables of {name}"))
                .kind(Kind::Storage)?;
            state.wiped = true;
        }
        let mut rest = data;
        if at < MIB as u64 {
            let take = (MIB - at as usize).min(data.len());
            let from = at as usize;
            if first.len() < from + take {
                first.resize(from + take, 0);
            }
            first[from..from + take].copy_from_slice(&data[..take]);
            // The held-back range still counts as written (it is, at the end).
            Progress::add(&progress.written, take as u64);
            rest = &data[take..];
        }
        let off = at + (data.len() - rest.len()) as u64;
        w.write_at(off, rest)
            .with_context(|| format!("writing {name} at byte {off}"))
            .kind(Kind::Storage)?;
        end = end.max(at + data.len() as u64);
        let _ = free.send(b);
        if let Some(wb) = &mut writeback {
            let now = progress.written.load(Ordering::Relaxed);
            wb.wrote(now - counted);
            counted = now;
        }

        if let Some(cb) = &mut req.on_progress {
            if last_cb.elapsed() >= Duration::from_millis(250) {
                cb(progress.snapshot());
                last_cb = Instant::now();
            }
        }
    }
    w.finish()
        .with_context(|| format!("writing {name}"))
        .kind(Kind::Storage)?;
    if let Some(wb) = writeback {
        // Its failures are only logged; it never fails: the final sync is what counts.
        let _ = wb.finish();
    }
    Ok((first, end, w.mode()))
}

/// Starts writeback of `f` every [`flush::WRITEBACK_EVERY`] bytes written. A failure (a file
/// system that cannot) is logged once and leaves the work to the final sync.
fn writeback_thread(f: File) -> io::Result<EarlyFlush> {
    let mut failed = false;
    let kick = move || {
        if !failed {
            if let Err(e) = flush::start_writeback(&f) {
                tracing::debug!(
                    "early writeback is not possible here ({e}); the final sync does it"
                );
                failed = true;
            }
        }
        Ok(())
    };
    // A knob for the trade-off measured in docs/bench-dd.md.
    let every = std::env::var("DEPLOYER_WRITEBACK_MIB")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .map_or(flush::WRITEBACK_EVERY, |m| m.max(1) << 20);
    EarlyFlush::new(kick, every)
}

/// The image's first MiB must hold a partition table or a filesystem signature: an HTML error
/// page served with 200, or a stray text file, is not written over a disk.
fn check_disk_image(first: &[u8], complete: bool) -> Result<()> {
    if magic::identify(first).is_some() {
        return Ok(());
    }
    bail!(
        "the source is not a disk image: its first MiB holds no partition table (MBR, GPT) and no \
         filesystem signature (ext2/3/4, xfs, btrfs, vfat, iso9660, swap, LVM, md, LUKS, squashfs); \
         it is {}. Nothing was written. To write raw data anyway, pass --raw-data (write-image) \
         or set `deployer: {{raw_data: true}}` in the config",
        magic::describe(first, first.len() as u64, complete)
    )
}

/// An image with a GPT for 512-byte sectors does not work on a 4Kn disk and vice versa.
fn check_sector_size(first: &[u8], sector: u32) -> Result<()> {
    let gpt_at = |o: usize| first.len() >= o + 8 && &first[o..o + 8] == b"EFI PART";
    let image = if gpt_at(512) {
        Some(512)
    } else if gpt_at(4096) {
        Some(4096)
    } else {
        None
    };
    match image {
        Some(s) if s != sector => bail!(
            "the image's GPT is laid out for {s}-byte sectors but the target has {sector}-byte logical sectors; use an image made for {sector}-byte sectors"
        ),
        _ => Ok(()),
    }
}

/// `deployer write-image SOURCE TARGET`.
pub fn run(g: &crate::cli::Global, a: &crate::cli::WriteImageArgs) -> Result<()> {
    use std::io::IsTerminal;
    preseed::sources::check_prefix(&a.source)
        .map_err(|m| anyhow!(m))
        .kind(Kind::Config)?;
    let named = preseed::sources::parse(&a.source);
    if !named.kind.is_dd() && named.uri != a.source {
        return Err(anyhow!(
            "{}: is a root tarball type; write-image writes disk images (dd-* types, or a bare \
             URL or path, whose format is detected)",
            named.kind
        ))
        .kind(Kind::Config);
    }
    let mut req = Request::new(&a.source, &a.target);
    // The config's `proxy` key applies when a config is given (-c/--set); otherwise the usual
    // environment variables do (reqwest reads them).
    if !g.config.is_empty() || !g.set.is_empty() {
        req.fetch.proxy = crate::config::load(g)?.config.proxy.clone();
    }
    // Checked before anything is fetched, with the config's rule.
    let digest = |key: &str, v: &Option<String>| {
        v.as_deref()
            .map(|h| preseed::sources::digest(key, h).map_err(|m| anyhow!("--{key}: {m}")))
            .transpose()
            .kind(Kind::Config)
    };
    req.sha256 = digest("sha256", &a.sha256)?;
    req.sha512 = digest("sha512", &a.sha512)?;
    req.size = a.size;
    req.mirrors = a.mirrors.clone();
    req.grow = !a.no_grow;
    req.raw_data = a.raw_data;
    let bar = std::io::stderr().is_terminal().then(|| {
        let pb = indicatif::ProgressBar::new(0);
        pb.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} {bytes}/{total_bytes} read, {msg} [{binary_bytes_per_sec}, ETA {eta}]",
            )
            .expect("template"),
        );
        pb
    });
    if let Some(pb) = bar.clone() {
        req.on_progress = Some(Box::new(move |s: Snapshot| {
            if let Some(t) = s.source_total {
                pb.set_length(t);
            }
            pb.set_position(s.read);
            pb.set_message(format!(
                "{} written, {} zeros skipped",
                indicatif::BinaryBytes(s.written),
                indicatif::BinaryBytes(s.skipped)
            ));
        }));
    }
    let summary = write_image(req);
    if let Some(pb) = bar {
        pb.finish_and_clear();
    }
    let summary = summary?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        eprintln!(
            "wrote {} bytes to {} ({} written, {} zeros skipped) in {:.1}s; root: {}; grow: {}",
            summary.image_size,
            summary.target.display(),
            summary.bytes_written,
            summary.bytes_skipped,
            summary.seconds,
            summary
                .root
                .as_ref()
                .map(|r| format!("{} (/{})", r.device.display(), r.marker))
                .unwrap_or_else(|| "not looked for".into()),
            summary.grow
        );
    }
    Ok(())
}
