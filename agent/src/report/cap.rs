//! Logs posted to the server (`post_files` on the final event) and packed into the error
//! tarball are capped: a chatty hook can write gigabytes to the install log, and a final event
//! that large fails (or takes the server down with it). The head (how the install started) and
//! the tail (how it ended) are kept, with a line saying how much was cut between them. The
//! log file itself stays whole on the machine.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

/// Bytes kept from the start of a long log.
pub const HEAD: u64 = 1 << 20;
/// Bytes kept from its end (where the failure is).
pub const TAIL: u64 = 3 << 20;

/// The file's bytes, or for a file longer than `HEAD + TAIL` its first `HEAD` and last `TAIL`
/// bytes with a marker line between them. Reads at most that much.
pub fn read_capped(path: &Path) -> io::Result<Vec<u8>> {
    read_capped_to(path, HEAD, TAIL)
}

/// A log for the error tarball: a quarter less than a posted log, so that the tarball (which
/// MAAS posts too) stays under the cap with the config and system facts beside it.
pub fn read_capped_for_tarball(path: &Path) -> io::Result<Vec<u8>> {
    read_capped_to(path, HEAD / 2, TAIL * 5 / 6)
}

fn read_capped_to(path: &Path, head: u64, tail: u64) -> io::Result<Vec<u8>> {
    let mut f = File::open(path)?;
    let len = f.metadata()?.len();
    if len <= head + tail {
        let mut out = Vec::with_capacity(len as usize);
        f.read_to_end(&mut out)?;
        return Ok(out);
    }
    let mut out = Vec::with_capacity((head + tail) as usize + 200);
    (&mut f).take(head).read_to_end(&mut out)?;
    let cut = len - head - tail;
    out.extend_from_slice(
        format!(
            "\n[deployer: {cut} bytes of this log were cut here (kept: the first {head} and the last {tail} bytes); the whole log is {} on the machine]\n",
            path.display()
        )
        .as_bytes(),
    );
    f.seek(SeekFrom::Start(len - tail))?;
    f.take(tail).read_to_end(&mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_logs_whole_long_ones_head_marker_tail() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("log");
        std::fs::write(&p, b"0123456789").unwrap();
        assert_eq!(read_capped_to(&p, 4, 6).unwrap(), b"0123456789");
        let out = read_capped_to(&p, 3, 2).unwrap();
        let s = String::from_utf8(out).unwrap();
        assert!(
            s.starts_with("012\n[deployer: 5 bytes of this log were cut here"),
            "{s}"
        );
        assert!(s.ends_with("on the machine]\n89"), "{s}");
    }
}
