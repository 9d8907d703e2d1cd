//! A buffer aligned for O_DIRECT (4096 bytes covers every logical sector size in use).
//!
//! Mapped anonymously rather than taken from the allocator: the allocator zeroes an
//! over-aligned allocation by writing it, which made every pool buffer resident at once
//! (20 MiB of the dd path's peak RSS before a byte was written). A fresh mapping is zero
//! without being touched, so only the pages a buffer is actually filled to count.

pub const ALIGN: usize = 4096;

/// A fixed-capacity, page-aligned byte buffer with a fill length.
pub struct AlignedBuf {
    ptr: *mut u8,
    cap: usize,
    /// Bytes in use, from the start.
    pub len: usize,
}

// SAFETY: the buffer owns its allocation exclusively; moving it between threads is fine.
unsafe impl Send for AlignedBuf {}

impl AlignedBuf {
    pub fn new(cap: usize) -> Self {
        let cap = cap.max(ALIGN).next_multiple_of(ALIGN);
        // SAFETY: an anonymous private mapping of `cap` bytes; no file, no fixed address.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                cap,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert!(
            ptr != libc::MAP_FAILED,
            "out of memory mapping {cap} bytes: {}",
            std::io::Error::last_os_error()
        );
        AlignedBuf {
            ptr: ptr.cast(),
            cap,
            len: 0,
        }
    }

    pub fn capacity(&self) -> usize {
        self.cap
    }

    /// The filled part.
    pub fn data(&self) -> &[u8] {
        &self.full()[..self.len]
    }

    /// The whole capacity, for filling.
    pub fn full_mut(&mut self) -> &mut [u8] {
        // SAFETY: ptr is valid for cap bytes and uniquely owned.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.cap) }
    }

    fn full(&self) -> &[u8] {
        // SAFETY: ptr is valid for cap bytes.
        unsafe { std::slice::from_raw_parts(self.ptr, self.cap) }
    }
}

/// A filled buffer and where on the target it goes.
pub struct Piece {
    pub at: u64,
    pub buf: AlignedBuf,
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        // SAFETY: mapped in `new` with this length, unmapped once.
        unsafe { libc::munmap(self.ptr.cast(), self.cap) };
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn aligned() {
        let mut b = super::AlignedBuf::new(1 << 20);
        assert_eq!(b.full_mut().as_ptr() as usize % super::ALIGN, 0);
        b.full_mut()[..3].copy_from_slice(b"abc");
        b.len = 3;
        assert_eq!(b.data(), b"abc");
    }
}
