//! A heap buffer aligned for O_DIRECT (4096 bytes covers every logical sector size in use).

use std::alloc::{alloc_zeroed, dealloc, Layout};

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
        let layout = Layout::from_size_align(cap.max(ALIGN), ALIGN).expect("layout");
        // SAFETY: layout has non-zero size.
        let ptr = unsafe { alloc_zeroed(layout) };
        assert!(!ptr.is_null(), "out of memory allocating {cap} bytes");
        AlignedBuf {
            ptr,
            cap: layout.size(),
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

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout.
        unsafe { dealloc(self.ptr, Layout::from_size_align_unchecked(self.cap, ALIGN)) }
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
