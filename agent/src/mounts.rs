//! The one reader of the kernel's mount table (`/proc/self/mountinfo`) and of the active swap
//! areas (`/proc/swaps`). Everything that asks "is this mounted?" or "what is mounted under
//! this directory?" goes through here, so that escaping and device numbers are handled once.

use std::path::{Path, PathBuf};

/// One line of `/proc/self/mountinfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// `major:minor` of the mounted filesystem (an anonymous `0:N` for btrfs, overlay, tmpfs).
    pub dev: String,
    /// Where it is mounted (unescaped).
    pub point: PathBuf,
    pub fstype: String,
    /// The mount source as the kernel shows it (`/dev/sda1`, `tmpfs`), unescaped.
    pub source: String,
}

/// The mount table in mount order; empty when it cannot be read.
pub fn table() -> Vec<Mount> {
    parse(&std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default())
}

fn parse(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            // id parent maj:min root point options [optional...] - fstype source superopts
            let sep = f.iter().position(|s| *s == "-")?;
            if f.len() < 5 || f.len() < sep + 3 {
                return None;
            }
            Some(Mount {
                dev: f[2].to_string(),
                point: PathBuf::from(unescape(f[4])),
                fstype: f[sep + 1].to_string(),
                source: unescape(f[sep + 2]),
            })
        })
        .collect()
}

/// Mount points at or under `dir` (symlinks in `dir` resolved), in mount order: unmount them
/// in reverse.
pub fn under(dir: &Path) -> Vec<PathBuf> {
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    table()
        .into_iter()
        .map(|m| m.point)
        .filter(|p| p.starts_with(&dir))
        .collect()
}

/// Is `p` a mount point?
pub fn is_mountpoint(p: &Path) -> bool {
    table().iter().any(|m| m.point == p)
}

/// The active swap areas (`/proc/swaps`), as the paths the kernel shows.
pub fn swaps() -> Vec<PathBuf> {
    std::fs::read_to_string("/proc/swaps")
        .unwrap_or_default()
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .map(|p| PathBuf::from(unescape(p)))
        .collect()
}

/// The kernel escapes space, tab, newline and backslash in these files as `\ooo`.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_mountinfo_with_optional_fields_and_escapes() {
        let t = parse(
            "36 35 98:0 / /mnt/a\\040b rw,noatime shared:1 master:2 - ext4 /dev/sda1 rw\n\
             40 35 0:52 / /tmp rw - tmpfs tmpfs rw\n\
             garbage\n",
        );
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].dev, "98:0");
        assert_eq!(t[0].point, PathBuf::from("/mnt/a b"));
        assert_eq!(
            (t[0].fstype.as_str(), t[0].source.as_str()),
            ("ext4", "/dev/sda1")
        );
        assert_eq!(t[1].fstype, "tmpfs");
        assert_eq!(unescape("a\\134b\\011"), "a\\b\t");
        assert_eq!(unescape("end\\04"), "end\\04");
    }

    #[test]
    fn the_root_is_a_mount_point() {
        assert!(is_mountpoint(Path::new("/")));
        assert!(under(Path::new("/")).contains(&PathBuf::from("/")));
    }
}
