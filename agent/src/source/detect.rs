//! The real format of a source, from its magic bytes, and the check against the declared type.

use super::kind::{DdSpec, SourceType};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Xz,
    Bzip2,
    Zstd,
}

impl Compression {
    /// From the first bytes of a stream (6 are enough).
    pub fn sniff(b: &[u8]) -> Compression {
        if b.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if b.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
            Compression::Xz
        } else if b.starts_with(b"BZh") && b.len() >= 4 && (b'1'..=b'9').contains(&b[3]) {
            Compression::Bzip2
        } else if b.starts_with(&[0x28, 0xb5, 0x2f, 0xfd])
            || (b.len() >= 4 && b[0] & 0xf0 == 0x50 && b[1..4] == [0x2a, 0x4d, 0x18])
        {
            // A zstd frame, or a skippable frame (0x184D2A5?) that zstd streams may start with.
            Compression::Zstd
        } else {
            Compression::None
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "uncompressed",
            Compression::Gzip => "gzip-compressed",
            Compression::Xz => "xz-compressed",
            Compression::Bzip2 => "bzip2-compressed",
            Compression::Zstd => "zstd-compressed",
        }
    }

    /// Whether `b` starts another member of this format (concatenated streams are valid).
    pub fn starts_member(self, b: &[u8]) -> bool {
        self != Compression::None && Compression::sniff(b) == self
    }
}

/// A tar archive: "ustar" at offset 257 of the first 512-byte header.
pub fn is_tar(first_block: &[u8]) -> bool {
    first_block.len() >= 262 && &first_block[257..262] == b"ustar"
}

/// What the bytes turned out to be.
pub type Found = DdSpec;

/// Describe layers in words: "a gzip-compressed tar archive".
pub fn describe(s: DdSpec) -> String {
    match (s.compression, s.tar) {
        (Compression::None, true) => "an uncompressed tar archive".into(),
        (Compression::None, false) => "an uncompressed disk image".into(),
        (c, true) => format!("a {} tar archive", c.name()),
        (c, false) => format!("a {} disk image (no tar archive inside)", c.name()),
    }
}

/// The error for a declared type that does not match the bytes, or None when they agree.
pub fn mismatch(declared: SourceType, found: DdSpec) -> Option<String> {
    let want = super::kind::dd_spec(declared)?;
    if want == found {
        return None;
    }
    let advice = match found.source_type() {
        Some(t) => format!("use {}: instead", t.prefix()),
        None => {
            "no curtin dd type describes it: recompress the image itself (dd-zst) or use dd-tar"
                .into()
        }
    };
    Some(format!(
        "the source is declared {} ({}) but is {}; {}",
        declared.prefix(),
        describe(want),
        describe(found),
        advice
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn sniffing() {
        assert_eq!(Compression::sniff(&[0x1f, 0x8b, 8]), Compression::Gzip);
        assert_eq!(Compression::sniff(b"\xfd7zXZ\0"), Compression::Xz);
        assert_eq!(Compression::sniff(b"BZh9"), Compression::Bzip2);
        assert_eq!(
            Compression::sniff(&[0x28, 0xb5, 0x2f, 0xfd]),
            Compression::Zstd
        );
        assert_eq!(Compression::sniff(&[0; 8]), Compression::None);
    }

    #[test]
    fn mismatch_message_names_both_and_the_fix() {
        let m = mismatch(
            SourceType::DdTgz,
            DdSpec {
                compression: Compression::Gzip,
                tar: false,
            },
        )
        .unwrap();
        assert!(m.contains("declared dd-tgz"), "{m}");
        assert!(m.contains("gzip-compressed disk image"), "{m}");
        assert!(m.contains("use dd-gz:"), "{m}");
        assert!(mismatch(
            SourceType::DdGz,
            DdSpec {
                compression: Compression::Gzip,
                tar: false
            }
        )
        .is_none());
    }
}
