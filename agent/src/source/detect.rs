//! The real format of a source, from its magic bytes, and the check against the declared type.

use super::compression::Compression;
use super::kind::{DdSpec, SourceType};

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
