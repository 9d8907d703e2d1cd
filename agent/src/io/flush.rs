//! Early writeback: a flush run on a thread of its own every so many bytes written, while the
//! work goes on, so that the final sync is not a long phase of its own.
//!
//! - extract: the target file system's `syncfs` every [`FLUSH_EVERY`] bytes of file data.
//!   Extracting leaves every file's data dirty in the page cache until the final sync (curtin
//!   runs `sync` after tar, and so does deployer); flushing from a second thread overlaps that
//!   writeback with decoding and file creation (docs/bench-extract.md: 8.6-8.8 s without,
//!   7.7-8.0 s with).
//! - write-image: [`start_writeback`] of the file under the target (a loop device's backing
//!   file, an image file) every [`WRITEBACK_EVERY`] bytes. Not an fdatasync of the device: a
//!   loop device runs a flush in the worker that does its writes, so each one stalled the
//!   writer and nothing overlapped (docs/bench-dd.md); this only queues the pages for the disk
//!   and returns.

use crossbeam_channel::{bounded, Sender, TrySendError};
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::thread::JoinHandle;

/// Bytes of file data written between syncfs calls (extract).
pub const FLUSH_EVERY: u64 = 64 << 20;
/// Bytes of image data written between writeback starts (write-image).
pub const WRITEBACK_EVERY: u64 = 32 << 20;

/// Start writeback of every dirty page of `f` without waiting for it
/// (`sync_file_range(SYNC_FILE_RANGE_WRITE)`); the final fsync still makes it durable.
pub fn start_writeback(f: &File) -> io::Result<()> {
    // SAFETY: plain syscall on a valid fd; offset 0 and length 0 mean the whole file.
    let r = unsafe { libc::sync_file_range(f.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

pub struct EarlyFlush {
    tx: Option<Sender<()>>,
    thread: Option<JoinHandle<io::Result<u32>>>,
    since: u64,
    every: u64,
}

impl EarlyFlush {
    /// Run `flush` in the background every `every` bytes counted by [`EarlyFlush::wrote`].
    pub fn new(
        mut flush: impl FnMut() -> io::Result<()> + Send + 'static,
        every: u64,
    ) -> io::Result<Self> {
        // One request waiting at most: a flush asked for while one runs covers both.
        let (tx, rx) = bounded::<()>(1);
        let thread = std::thread::Builder::new()
            .name("flush".into())
            .spawn(move || {
                let mut n = 0;
                for () in rx {
                    flush()?;
                    n += 1;
                }
                Ok(n)
            })?;
        Ok(EarlyFlush {
            tx: Some(tx),
            thread: Some(thread),
            since: 0,
            every,
        })
    }

    /// Count `n` bytes written; past the threshold, ask for a flush (never waits for it).
    pub fn wrote(&mut self, n: u64) {
        let Some(tx) = &self.tx else { return };
        self.since += n;
        if self.since >= self.every {
            match tx.try_send(()) {
                Ok(()) | Err(TrySendError::Full(())) => self.since = 0,
                Err(TrySendError::Disconnected(())) => {} // it failed; finish() says why
            }
        }
    }

    /// Wait for the flushes asked for; the number done, or the first failure.
    pub fn finish(mut self) -> io::Result<u32> {
        self.tx.take();
        match self.thread.take() {
            Some(t) => t
                .join()
                .map_err(|_| io::Error::other("the flush thread panicked"))?,
            None => Ok(0),
        }
    }
}

impl Drop for EarlyFlush {
    fn drop(&mut self) {
        // On an early return the thread ends after its current flush; nobody waits for it.
        self.tx.take();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileExt;

    #[test]
    fn flushes_in_the_background_and_counts() {
        let dir = tempfile::tempdir().unwrap();
        let f = File::create(dir.path().join("t")).unwrap();
        let g = f.try_clone().unwrap();
        let mut fl = EarlyFlush::new(move || g.sync_data(), 1 << 20).unwrap();
        let chunk = vec![7u8; 1 << 20];
        for i in 0..3 {
            f.write_all_at(&chunk, i << 20).unwrap();
            fl.wrote(chunk.len() as u64);
        }
        let n = fl.finish().unwrap();
        assert!((1..=3).contains(&n), "{n} flushes");
        let mut failing = EarlyFlush::new(|| Err(io::Error::other("EIO")), 1).unwrap();
        failing.wrote(1);
        assert_eq!(failing.finish().unwrap_err().to_string(), "EIO");
    }
}
