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

/// One fstab entry, as the config gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub spec: String,
    /// `none` for swap.
    pub path: String,
    pub fstype: String,
    /// As given; empty or `defaults` is written `defaults` (`sw` for swap).
    pub options: String,
    pub freq: String,
    /// As given; `None` (or negative) is decided from the file system, as curtin does.
    pub passno: Option<String>,
    /// The mount's `spec`, else the device it was on: for the comment line.
    pub device: String,
}

impl Entry {
    /// curtin's `fstab_line_for_data`; `proc_filesystems` is the text of /proc/filesystems.
    pub fn render(&self, proc_filesystems: &str) -> String {
        let mut s = String::new();
        if self.path != "none" {
            s += &format!(
                "# {} was on {} during curtin installation\n",
                self.path, self.device
            );
        }
        let options = match self.options.as_str() {
            "" | "defaults" if self.fstype == "swap" => "sw",
            "" => "defaults",
            o => o,
        };
        let passno = match &self.passno {
            Some(p) if !p.trim().starts_with('-') => p.clone(),
            _ => passno_of(&self.fstype, proc_filesystems).to_string(),
        };
        s += &format!(
            "{} {} {} {options} {} {passno}\n",
            self.spec, self.path, self.fstype, self.freq
        );
        s
    }
}

/// curtin's `proc_filesystems_passno`: 0 for swap and for file systems the kernel lists as
/// `nodev` (tmpfs, proc, ...), 1 for the rest (listed or not).
pub fn passno_of(fstype: &str, proc_filesystems: &str) -> u8 {
    if fstype == "swap" || fstype == "none" {
        return 0;
    }
    let nodev = proc_filesystems.lines().any(|l| {
        let mut t = l.split('\t');
        t.next() == Some("nodev") && t.next() == Some(fstype)
    });
    u8::from(!nodev)
}

/// The entries, passno decided from this machine's /proc/filesystems (as curtin reads it).
pub fn render(entries: &[Entry]) -> String {
    let procfs = std::fs::read_to_string("/proc/filesystems").unwrap_or_default();
    entries.iter().map(|e| e.render(&procfs)).collect()
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
            options: "".into(),
            freq: "0".into(),
            passno: None,
            device: "/dev/sda2".into(),
        };
        let procfs = "nodev\tsysfs\nnodev\ttmpfs\n\text4\nnodev\tproc\n";
        assert_eq!(
            e.render(procfs),
            "# / was on /dev/sda2 during curtin installation\n/dev/disk/by-uuid/abc / ext4 defaults 0 1\n"
        );
        // tmpfs is nodev: pass 0; swap written `sw` even when given `defaults`; no comment
        // for `none`; a given passno kept.
        let tmp = Entry {
            spec: "tmpfs".into(),
            path: "/tmp".into(),
            fstype: "tmpfs".into(),
            device: "tmpfs".into(),
            ..e.clone()
        };
        assert_eq!(
            tmp.render(procfs),
            "# /tmp was on tmpfs during curtin installation\ntmpfs /tmp tmpfs defaults 0 0\n"
        );
        let swap = Entry {
            path: "none".into(),
            fstype: "swap".into(),
            options: "defaults".into(),
            ..e.clone()
        };
        assert_eq!(
            swap.render(procfs),
            "/dev/disk/by-uuid/abc none swap sw 0 0\n"
        );
        let given = Entry {
            passno: Some("2".into()),
            ..e.clone()
        };
        assert!(given.render(procfs).ends_with(" / ext4 defaults 0 2\n"));
        assert_eq!(passno_of("xfs", procfs), 1, "not listed: 1");
        assert_eq!(
            header_of(Some("# a\n# b\nUUID=x / ext4 defaults 0 1\n")),
            "# a\n# b\n"
        );
    }
}
