//! The compression a stream starts with, from its magic bytes (shared by the type model in
//! `kind` and the detection in `detect`).

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
