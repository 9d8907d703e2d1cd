//! The image writer: large aligned writes, and zero runs left out where that is safe.
//!
//! Skipping a zero run is only correct when the target already reads back zeros there, which
//! is never assumed for a disk that held anything before. [`ZeroMode`] says how we know:
//! - `KnownZero`: a fresh sparse file we just created; unwritten ranges read as zeros (POSIX).
//! - `Punch`: each skipped run is handed to `fallocate(PUNCH_HOLE|KEEP_SIZE)`. On a block device
//!   the kernel maps that to a write-zeroes request with *no fallback* (`blkdev_fallocate` in
//!   `block/fops.c`: `BLKDEV_ZERO_NOFALLBACK`): it either guarantees zeros (hardware offload,
//!   thin/loop backing punched out) or fails with EOPNOTSUPP, in which case we switch to writing
//!   zeros. On a regular file a punched hole reads back zeros by definition. Plain discard is
//!   never used: it does not promise zeros.
//! - `WriteAll`: every byte is written.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;

use super::aligned::AlignedBuf;
use super::progress::Progress;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ZeroMode {
    WriteAll,
    KnownZero,
    Punch,
}

/// Zero detection granularity; data writes are cut on these boundaries.
pub const BLOCK: usize = 64 * 1024;
/// Zero runs shorter than this are written: a syscall per tiny hole costs more than it saves.
pub const MIN_SKIP: u64 = 1024 * 1024;

pub struct ZeroSkipWriter<'a> {
    /// The target, possibly opened O_DIRECT (aligned offsets and lengths only).
    direct: &'a File,
    /// The same target opened buffered, for a tail that is not sector-aligned.
    buffered: &'a File,
    mode: ZeroMode,
    /// The zero run not yet written or skipped: (offset, length).
    pending: Option<(u64, u64)>,
    zeros: AlignedBuf,
    progress: &'a Progress,
}

impl<'a> ZeroSkipWriter<'a> {
    pub fn new(
        direct: &'a File,
        buffered: &'a File,
        mode: ZeroMode,
        progress: &'a Progress,
    ) -> Self {
        let mut zeros = AlignedBuf::new(MIN_SKIP as usize);
        zeros.len = MIN_SKIP as usize;
        ZeroSkipWriter {
            direct,
            buffered,
            mode,
            pending: None,
            zeros,
            progress,
        }
    }

    pub fn mode(&self) -> ZeroMode {
        self.mode
    }

    /// Write `data` at `offset`. Zero runs are joined across calls only when contiguous, so
    /// pieces may come in any order (parallel xz blocks), costing a split run at worst.
    pub fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        if self.mode == ZeroMode::WriteAll {
            return self.write_data(offset, data);
        }
        let mut i = 0;
        while i < data.len() {
            // Classify a run of whole blocks of the same kind.
            let zero = is_zero(&data[i..(i + BLOCK).min(data.len())]);
            let mut j = (i + BLOCK).min(data.len());
            while j < data.len() && is_zero(&data[j..(j + BLOCK).min(data.len())]) == zero {
                j = (j + BLOCK).min(data.len());
            }
            let off = offset + i as u64;
            if zero {
                match &mut self.pending {
                    Some((s, l)) if *s + *l == off => *l += (j - i) as u64,
                    _ => {
                        self.flush_pending()?;
                        self.pending = Some((off, (j - i) as u64));
                    }
                }
            } else {
                self.flush_pending()?;
                self.write_data(off, &data[i..j])?;
            }
            i = j;
        }
        Ok(())
    }

    /// Settle the last zero run. Call before syncing.
    pub fn finish(&mut self) -> io::Result<()> {
        self.flush_pending()
    }

    fn flush_pending(&mut self) -> io::Result<()> {
        let Some((off, len)) = self.pending.take() else {
            return Ok(());
        };
        if len < MIN_SKIP {
            return self.write_zeros(off, len);
        }
        match self.mode {
            ZeroMode::KnownZero => {
                Progress::add(&self.progress.skipped, len);
                Ok(())
            }
            ZeroMode::Punch => {
                // Only whole 4 KiB units are punched; the edges (an image tail) are written.
                let start = off.next_multiple_of(4096);
                let end = (off + len) / 4096 * 4096;
                if end <= start {
                    return self.write_zeros(off, len);
                }
                match punch(self.direct, start, end - start) {
                    Ok(()) => {
                        Progress::add(&self.progress.skipped, end - start);
                        self.write_zeros(off, start - off)?;
                        self.write_zeros(end, off + len - end)
                    }
                    Err(e)
                        if matches!(
                            e.raw_os_error(),
                            Some(libc::EOPNOTSUPP) | Some(libc::EINVAL) | Some(libc::ENOTTY)
                        ) =>
                    {
                        tracing::info!(
                            "the target cannot zero without writing ({e}); writing zero runs"
                        );
                        self.mode = ZeroMode::WriteAll;
                        self.write_zeros(off, len)
                    }
                    Err(e) => Err(e),
                }
            }
            ZeroMode::WriteAll => self.write_zeros(off, len),
        }
    }

    fn write_zeros(&mut self, mut off: u64, mut len: u64) -> io::Result<()> {
        while len > 0 {
            let n = len.min(MIN_SKIP) as usize;
            write_aligned(
                self.direct,
                self.buffered,
                self.progress,
                off,
                &self.zeros.data()[..n],
            )?;
            off += n as u64;
            len -= n as u64;
        }
        Ok(())
    }

    fn write_data(&mut self, off: u64, data: &[u8]) -> io::Result<()> {
        write_aligned(self.direct, self.buffered, self.progress, off, data)
    }
}

fn write_aligned(
    direct: &File,
    buffered: &File,
    progress: &Progress,
    off: u64,
    data: &[u8],
) -> io::Result<()> {
    {
        // O_DIRECT needs sector-aligned offset, length and memory: the aligned prefix goes
        // direct, an odd tail (only ever the image's end) goes through the page cache.
        let aligned = data.len() / 4096 * 4096;
        let aligned_ok = off.is_multiple_of(4096) && (data.as_ptr() as usize).is_multiple_of(4096);
        let (head, tail) = if aligned_ok {
            data.split_at(aligned)
        } else {
            (&data[..0], data)
        };
        if !head.is_empty() {
            direct.write_all_at(head, off)?;
        }
        if !tail.is_empty() {
            buffered.write_all_at(tail, off + head.len() as u64)?;
        }
        Progress::add(&progress.written, data.len() as u64);
        Ok(())
    }
}

/// fallocate(PUNCH_HOLE | KEEP_SIZE): guaranteed zeros or an error (see the module comment).
pub fn punch(f: &File, off: u64, len: u64) -> io::Result<()> {
    let mode = libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE;
    // SAFETY: plain syscall on a valid fd.
    let r = unsafe { libc::fallocate(f.as_raw_fd(), mode, off as i64, len as i64) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// True when every byte is zero. Checked a page at a time (each page 16 bytes at a time, which
/// vectorises), so that a data block, the common case outside zero runs, is rejected after its
/// first page instead of being read whole: this check sees every byte of the image.
pub fn is_zero(b: &[u8]) -> bool {
    b.chunks(4096).all(|c| {
        // SAFETY: u128 has no invalid bit patterns.
        let (pre, mid, post) = unsafe { c.align_to::<u128>() };
        pre.iter().all(|&x| x == 0)
            && post.iter().all(|&x| x == 0)
            && mid.iter().fold(0u128, |a, &x| a | x) == 0
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(mode: ZeroMode, data: &[u8]) -> (Vec<u8>, u64) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t");
        let f = File::create(&p).unwrap();
        // Junk where the image goes, so that a skipped run that is not zeroed shows up.
        f.write_all_at(&vec![0xAAu8; data.len()], 0).unwrap();
        let prog = Progress::default();
        let mut w = ZeroSkipWriter::new(&f, &f, mode, &prog);
        w.write_at(0, &data[..BLOCK * 3]).unwrap();
        w.write_at((BLOCK * 3) as u64, &data[BLOCK * 3..]).unwrap();
        w.finish().unwrap();
        (std::fs::read(&p).unwrap(), prog.snapshot().skipped)
    }

    #[test]
    fn punch_mode_is_byte_exact_over_junk() {
        let mut data = vec![0u8; 4 << 20];
        data[10] = 1;
        data[(3 << 20) + 5] = 7;
        data.truncate((4 << 20) - 100);
        let (out, skipped) = run(ZeroMode::Punch, &data);
        assert_eq!(out, data);
        assert!(skipped >= 2 << 20, "skipped {skipped}");
        let (out, skipped) = run(ZeroMode::WriteAll, &data);
        assert_eq!(out, data);
        assert_eq!(skipped, 0);
    }

    #[test]
    fn zero_check() {
        assert!(is_zero(&[0u8; 100]));
        let mut v = vec![0u8; 1000];
        v[999] = 1;
        assert!(!is_zero(&v));
        assert!(!is_zero(&v[3..]));
    }
}
