//! Small composable readers and writers, one type a file.

pub mod aligned;
pub mod channel;
pub mod flush;
pub mod hash;
pub mod limit;
pub mod peek;
pub mod progress;
pub mod zero_skip;

pub use aligned::{AlignedBuf, Piece};
pub use channel::{pipelined, ChannelReader};
pub use flush::EarlyFlush;
pub use hash::{Digests, HashReader};
pub use limit::{LimitReader, TooLarge};
pub use peek::PeekReader;
pub use progress::{Progress, Snapshot};
pub use zero_skip::{ZeroMode, ZeroSkipWriter};

use std::io::{self, Read};

/// Read `r` to its end into `buf`-sized chunks (every chunk full except the last).
pub fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}
