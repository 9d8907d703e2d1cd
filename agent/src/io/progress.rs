//! Byte counters shared by the pipeline threads, and the snapshot the reporting layer reads.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Live counters. `total` is the decoded image size when known (0 = unknown).
#[derive(Debug, Default)]
pub struct Progress {
    /// Source bytes received (compressed, as served).
    pub read: AtomicU64,
    /// Image bytes produced by the decoder.
    pub decoded: AtomicU64,
    /// Image bytes written to the target.
    pub written: AtomicU64,
    /// Image bytes not written because they are zeros the target already reads back.
    pub skipped: AtomicU64,
    /// Source size as served, when known (0 = unknown).
    pub source_total: AtomicU64,
}

/// A point-in-time copy of [`Progress`], for callbacks and events.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Snapshot {
    pub read: u64,
    pub decoded: u64,
    pub written: u64,
    pub skipped: u64,
    /// Source size as served, when known.
    pub source_total: Option<u64>,
}

impl Progress {
    pub fn snapshot(&self) -> Snapshot {
        let t = self.source_total.load(Relaxed);
        Snapshot {
            read: self.read.load(Relaxed),
            decoded: self.decoded.load(Relaxed),
            written: self.written.load(Relaxed),
            skipped: self.skipped.load(Relaxed),
            source_total: (t > 0).then_some(t),
        }
    }

    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }
}
