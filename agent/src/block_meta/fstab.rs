//! `/etc/fstab` in curtin's format: for each mount, a comment line `# <path> was on <dev> during
//! curtin installation`, then `<spec> <path> <fstype> <options> <freq> <passno>`.

use std::path::Path;

use anyhow::Result;

use crate::target::TargetRoot;

/// The header Debian and Ubuntu images start their fstab with (curtin's `fstab_header`).
pub const DEFAULT_HEADER: &str = "# /etc/fstab: static file system information.\n\
#\n\
# Use 'blkid' to print the universally unique identifier for a\n\
# device; this may be used with UUID= as a more robust way to name devices\n\
# that works even if disks are added and removed. See fstab(5).\n\
#\n\
# <file system> <mount point>   <type>  <options>       <dump>  <pass>\n";

/// One fstab entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub spec: String,
    /// `none` for swap.
    pub path: String,
    pub fstype: String,
    pub options: String,
    pub freq: String,
    pub passno: String,
    /// The device it was on, for the comment line.
    pub device: String,
}

impl Entry {
    pub fn render(&self) -> String {
        let mut s = String::new();
        if self.path != "none" {
            s += &format!(
                "# {} was on {} during curtin installation\n",
                self.path, self.device
            );
        }
        s += &format!(
            "{} {} {} {} {} {}\n",
            self.spec, self.path, self.fstype, self.options, self.freq, self.passno
        );
        s
    }
}

pub fn render(entries: &[Entry]) -> String {
    entries.iter().map(Entry::render).collect()
}

/// The leading comment lines of an existing fstab (the distro's header), or the default one.
pub fn header_of(existing: Option<&str>) -> String {
    let head: String = existing
        .unwrap_or("")
        .lines()
        .take_while(|l| l.starts_with('#') || l.trim().is_empty())
        .filter(|l| !l.contains("during curtin installation"))
        .map(|l| format!("{l}\n"))
        .collect();
    if head.trim().is_empty() {
        DEFAULT_HEADER.to_string()
    } else {
        head
    }
}

/// Where the fstab is, inside the target.
pub const PATH: &str = "etc/fstab";

/// Write `<target>/etc/fstab` = the image's header lines + `body` (curtin's `copy_fstab`),
/// resolved inside the target (an image's `etc/fstab` symlink is followed as the target would).
pub fn install(target: &Path, body: &str) -> Result<()> {
    let root = TargetRoot::open(target)?;
    let existing = root.read_to_string_opt(PATH);
    let mut text = header_of(existing.as_deref());
    if !text.ends_with("\n\n") {
        text.push('\n');
    }
    text += body;
    root.write_file(PATH, text.as_bytes(), 0o644, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn curtin_format() {
        let e = Entry {
            spec: "/dev/disk/by-uuid/abc".into(),
            path: "/".into(),
            fstype: "ext4".into(),
            options: "defaults".into(),
            freq: "0".into(),
            passno: "1".into(),
            device: "/dev/sda2".into(),
        };
        assert_eq!(
            e.render(),
            "# / was on /dev/sda2 during curtin installation\n/dev/disk/by-uuid/abc / ext4 defaults 0 1\n"
        );
        assert_eq!(
            header_of(Some("# a\n# b\nUUID=x / ext4 defaults 0 1\n")),
            "# a\n# b\n"
        );
    }
}
