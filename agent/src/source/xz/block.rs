//! One xz block, decoded on its own: liblzma's block decoder (`lzma_block_decoder`), which the
//! `liblzma` crate does not wrap. A block decodes independently of the others once its header
//! and the stream's check type are known, which is what lets blocks go to several threads.

use std::io;

use liblzma_sys as sys;

/// The length of a block header, from its first byte (never 0: that is the index indicator).
pub fn header_len(first: u8) -> usize {
    (first as usize + 1) * 4
}

/// What a block header says about its block.
#[derive(Debug, Clone, Copy)]
pub struct Header {
    pub len: usize,
    pub compressed: Option<u64>,
    pub uncompressed: Option<u64>,
    check: sys::lzma_check,
}

impl Header {
    /// Parse the `header_len(bytes[0])` bytes of a block header of a stream using `check`.
    pub fn parse(bytes: &[u8], check: u32) -> io::Result<Header> {
        let mut b = Block::new(bytes.len(), check);
        b.decode_header(bytes)?;
        b.free_filters();
        let known = |v: u64| (v != sys::LZMA_VLI_UNKNOWN).then_some(v);
        Ok(Header {
            len: bytes.len(),
            compressed: known(b.raw.compressed_size),
            uncompressed: known(b.raw.uncompressed_size),
            check,
        })
    }

    /// Bytes of the check field after the (padded) compressed data.
    pub fn check_len(&self) -> u64 {
        // SAFETY: a pure function of its argument.
        u64::from(unsafe { sys::lzma_check_size(self.check) })
    }

    /// The whole block on the wire (header, data, padding, check), if the header says.
    pub fn total_len(&self) -> Option<u64> {
        let c = self.compressed?;
        Some((self.len as u64 + c).next_multiple_of(4) + self.check_len())
    }

    /// What the index records for this block: header + data + check, without padding.
    pub fn unpadded_len(&self, compressed: u64) -> u64 {
        self.len as u64 + compressed + self.check_len()
    }
}

/// liblzma's block options with the filter chain its header decodes into; boxed by the
/// decoder, which keeps a pointer to it until the block ends.
struct Block {
    raw: sys::lzma_block,
    filters: [sys::lzma_filter; sys::LZMA_FILTERS_MAX as usize + 1],
}

impl Block {
    fn new(header_len: usize, check: u32) -> Box<Block> {
        // SAFETY: both are plain C structs for which all-zero is a valid (empty) value.
        let mut b: Box<Block> = Box::new(unsafe { std::mem::zeroed() });
        b.raw.version = 1;
        b.raw.header_size = header_len as u32;
        b.raw.check = check;
        b
    }

    fn decode_header(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.raw.filters = self.filters.as_mut_ptr();
        // SAFETY: `bytes` holds header_size bytes; `filters` has LZMA_FILTERS_MAX + 1 slots.
        let r = unsafe {
            sys::lzma_block_header_decode(&mut self.raw, std::ptr::null(), bytes.as_ptr())
        };
        match r {
            sys::LZMA_OK => Ok(()),
            sys::LZMA_OPTIONS_ERROR => Err(bad("a block header asks for an unsupported filter")),
            _ => Err(bad("corrupt block header")),
        }
    }

    fn free_filters(&mut self) {
        // SAFETY: the options were allocated by lzma_block_header_decode with the default
        // allocator; the array is terminated, and freed entries are reset.
        unsafe { sys::lzma_filters_free(self.filters.as_mut_ptr(), std::ptr::null()) };
        self.raw.filters = std::ptr::null_mut();
    }
}

fn bad(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

/// A block decoder: header in, then the block's bytes (data, padding, check) as they come.
/// liblzma checks the sizes the header declares, the padding and the check.
pub struct Decoder {
    strm: sys::lzma_stream,
    block: Box<Block>,
    done: bool,
}

// SAFETY: the stream and the block it points to are owned by this value alone.
unsafe impl Send for Decoder {}

impl Decoder {
    /// A decoder for the block whose header is `header`, in a stream using `check`.
    pub fn new(header: &[u8], check: u32) -> io::Result<Decoder> {
        let mut d = Decoder {
            // SAFETY: LZMA_STREAM_INIT is all zeros.
            strm: unsafe { std::mem::zeroed() },
            block: Block::new(header.len(), check),
            done: true,
        };
        d.start(header, check)?;
        Ok(d)
    }

    /// Start on the next block, keeping the memory of the last one (its dictionary is reused
    /// when the size is the same, as it is for every block of one `xz` run).
    pub fn start(&mut self, header: &[u8], check: u32) -> io::Result<()> {
        *self.block = *Block::new(header.len(), check);
        self.block.decode_header(header)?;
        // SAFETY: `block` is boxed and outlives `strm` (both owned here, the stream ended in
        // Drop); the filter chain is needed only during this call.
        let r = unsafe { sys::lzma_block_decoder(&mut self.strm, &mut self.block.raw) };
        self.block.free_filters();
        self.done = false;
        match r {
            sys::LZMA_OK => Ok(()),
            sys::LZMA_MEM_ERROR => Err(io::Error::new(
                io::ErrorKind::OutOfMemory,
                "no memory for the xz block decoder",
            )),
            sys::LZMA_UNSUPPORTED_CHECK => Err(bad("the stream's check type is not supported")),
            _ => Err(bad("the block header's options are not supported")),
        }
    }

    /// Decode from `input` into `out`: (input bytes used, output bytes made). `Ok((0, 0))`
    /// with output room left means the block needs more input than there is.
    pub fn decode(&mut self, input: &[u8], out: &mut [u8]) -> io::Result<(usize, usize)> {
        if self.done {
            return Ok((0, 0));
        }
        self.strm.next_in = input.as_ptr();
        self.strm.avail_in = input.len();
        self.strm.next_out = out.as_mut_ptr();
        self.strm.avail_out = out.len();
        // SAFETY: the pointers describe the two live slices for the duration of the call.
        let r = unsafe { sys::lzma_code(&mut self.strm, sys::LZMA_RUN) };
        let used = input.len() - self.strm.avail_in;
        let made = out.len() - self.strm.avail_out;
        self.strm.next_in = std::ptr::null();
        self.strm.next_out = std::ptr::null_mut();
        match r {
            sys::LZMA_OK | sys::LZMA_BUF_ERROR => Ok((used, made)),
            sys::LZMA_STREAM_END => {
                self.done = true;
                Ok((used, made))
            }
            sys::LZMA_MEM_ERROR => Err(io::Error::new(
                io::ErrorKind::OutOfMemory,
                "out of memory in the xz block decoder",
            )),
            _ => Err(bad(
                "corrupt data in a block (bad LZMA data, size, padding or check)",
            )),
        }
    }

    /// The block's end (its check included) has been decoded.
    pub fn finished(&self) -> bool {
        self.done
    }

    /// The block's compressed and uncompressed sizes, once finished.
    pub fn sizes(&self) -> (u64, u64) {
        (
            self.block.raw.compressed_size,
            self.block.raw.uncompressed_size,
        )
    }
}

impl Drop for Decoder {
    fn drop(&mut self) {
        // SAFETY: initialised by lzma_block_decoder; ended once.
        unsafe { sys::lzma_end(&mut self.strm) };
    }
}
