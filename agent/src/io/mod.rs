//! Small composable readers and writers, one type a file.

pub mod aligned;
pub mod hash;
pub mod limit;
pub mod peek;
pub mod progress;
pub mod zero_skip;

pub use aligned::AlignedBuf;
pub use hash::{Digests, HashReader};
pub use limit::LimitReader;
pub use peek::PeekReader;
pub use progress::{Progress, Snapshot};
pub use zero_skip::{ZeroMode, ZeroSkipWriter};
