//! Is this a disk image? Decided from its first MiB before a byte is written: a partition table
//! (MBR signature, GPT header) or a filesystem or volume signature at the offsets blkid reads.
//! An HTML error page served with 200, or a short text file, has none of them.

/// Bytes of the image looked at.
pub const WINDOW: usize = 1 << 20;

/// What the start of an image holds, or `None` when it holds nothing a disk image starts with.
pub fn identify(first: &[u8]) -> Option<&'static str> {
    let b = &first[..first.len().min(WINDOW)];
    let at = |off: usize, magic: &[u8]| b.get(off..off + magic.len()) == Some(magic);
    // GPT first: a protective MBR carries the 0x55AA signature too.
    if at(512, b"EFI PART") || at(4096, b"EFI PART") {
        return Some("a GPT partition table");
    }
    let signatures: &[(&str, usize, &[u8])] = &[
        ("an ext2/3/4 filesystem", 1080, &[0x53, 0xef]),
        ("an xfs filesystem", 0, b"XFSB"),
        ("a btrfs filesystem", 0x10040, b"_BHRfS_M"),
        ("an iso9660 filesystem", 0x8001, b"CD001"),
        ("a LUKS volume", 0, b"LUKS\xba\xbe"),
        ("a squashfs filesystem", 0, b"hsqs"),
        ("a squashfs filesystem", 0, b"sqsh"),
        ("an md RAID member (1.1)", 0, &[0xfc, 0x4e, 0x2b, 0xa9]),
        ("an md RAID member (1.2)", 4096, &[0xfc, 0x4e, 0x2b, 0xa9]),
        ("a vfat filesystem", 54, b"FAT1"),
        ("a vfat filesystem", 82, b"FAT32   "),
    ];
    for (what, off, magic) in signatures {
        if at(*off, magic) {
            return Some(what);
        }
    }
    // LVM's label is in one of the first four sectors; swap's signature ends its first page.
    if (0..4).any(|s| at(s * 512, b"LABELONE") && at(s * 512 + 24, b"LVM2 001")) {
        return Some("an LVM physical volume");
    }
    for page in [4096usize, 8192, 16384, 65536] {
        if at(page - 10, b"SWAPSPACE2") || at(page - 10, b"SWAP-SPACE") {
            return Some("a swap area");
        }
    }
    if at(510, &[0x55, 0xaa]) {
        return Some("an MBR partition table (or boot sector)");
    }
    None
}

/// Words for data that is not a disk image, with its size: "an HTML page of 1234 bytes
/// (starts \"<!DOCTYPE html>...\")".
pub fn describe(first: &[u8], total: u64, complete: bool) -> String {
    let size = if complete {
        format!("{total} bytes")
    } else {
        format!("at least {total} bytes")
    };
    if first.iter().all(|&c| c == 0) {
        return format!("{size} of zeros");
    }
    let head = &first[..first.len().min(4096)];
    let text = std::str::from_utf8(head).is_ok_and(|s| {
        s.chars()
            .all(|c| !c.is_control() || c.is_ascii_whitespace())
    });
    let start = || {
        let s = String::from_utf8_lossy(&head[..head.len().min(60)]);
        let s: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
        format!("starts {s:?}")
    };
    if text {
        let lower = String::from_utf8_lossy(head).to_ascii_lowercase();
        let kind = if lower.contains("<html") || lower.contains("<!doctype html") {
            "an HTML page"
        } else {
            "text"
        };
        return format!("{kind} of {size} ({})", start());
    }
    format!(
        "{size} of unrecognised data (starts {:02x?})",
        &first[..first.len().min(16)]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(off: usize, magic: &[u8]) -> Vec<u8> {
        let mut v = vec![0u8; 128 << 10];
        v[off..off + magic.len()].copy_from_slice(magic);
        v
    }

    #[test]
    fn tables_and_filesystems_are_images() {
        assert_eq!(
            identify(&with(512, b"EFI PART")),
            Some("a GPT partition table")
        );
        assert!(identify(&with(1080, &[0x53, 0xef]))
            .unwrap()
            .contains("ext"));
        assert!(identify(&with(0x10040, b"_BHRfS_M"))
            .unwrap()
            .contains("btrfs"));
        assert!(identify(&with(4086, b"SWAPSPACE2"))
            .unwrap()
            .contains("swap"));
        assert!(identify(&with(510, &[0x55, 0xaa])).unwrap().contains("MBR"));
        let mut lvm = with(512, b"LABELONE");
        lvm[536..544].copy_from_slice(b"LVM2 001");
        assert!(identify(&lvm).unwrap().contains("LVM"));
    }

    #[test]
    fn pages_text_and_zeros_are_not() {
        let page = b"<!DOCTYPE html>\n<html><head><title>404 Not Found</title>";
        assert_eq!(identify(page), None);
        let d = describe(page, page.len() as u64, true);
        assert!(d.starts_with("an HTML page of 56 bytes"), "{d}");
        assert!(d.contains("404 Not Found"), "{d}");
        assert!(describe(b"hello\n", 6, true).starts_with("text of 6 bytes"));
        assert_eq!(identify(&[0u8; 4096]), None);
        assert_eq!(
            describe(&[0u8; 4096], 4096, false),
            "at least 4096 bytes of zeros"
        );
        assert!(describe(&[1, 2, 3], 3, true).contains("unrecognised data"));
    }
}
