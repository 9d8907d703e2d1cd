//! What a dd source type promises about its bytes. The type itself is the config model's
//! [`preseed::sources::SourceType`].

pub use preseed::sources::SourceType;

use super::compression::Compression;

/// The layers of a dd source: an optional compression around an optional tar around the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DdSpec {
    pub compression: Compression,
    pub tar: bool,
}

/// The layers a dd type declares; `None` for a type that is not a dd image.
pub fn dd_spec(t: SourceType) -> Option<DdSpec> {
    use Compression::*;
    let (compression, tar) = match t {
        SourceType::DdRaw => (None, false),
        SourceType::DdGz => (Gzip, false),
        SourceType::DdXz => (Xz, false),
        SourceType::DdBz2 => (Bzip2, false),
        SourceType::DdZst => (Zstd, false),
        SourceType::DdTar => (None, true),
        SourceType::DdTgz => (Gzip, true),
        SourceType::DdTbz => (Bzip2, true),
        SourceType::DdTxz => (Xz, true),
        _ => return Option::None,
    };
    Some(DdSpec { compression, tar })
}

impl DdSpec {
    /// The curtin type that describes these layers, if there is one.
    pub fn source_type(self) -> Option<SourceType> {
        SourceType::ALL
            .into_iter()
            .find(|t| dd_spec(*t) == Some(self))
    }
}

/// Split `dd-gz:http://...` into a declared dd type and the uri. A string without a dd prefix
/// has no declared type: its format is detected (unlike curtin's sanitize_source, which would
/// call it a tgz; `write-image` only writes disk images).
pub fn split_dd(source: &str) -> (Option<SourceType>, &str) {
    let s = preseed::sources::parse(source);
    if s.kind.is_dd() {
        return (Some(s.kind), &source[source.len() - s.uri.len()..]);
    }
    (None, source)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn prefixes() {
        assert_eq!(
            split_dd("dd-gz:http://x/y"),
            (Some(SourceType::DdGz), "http://x/y")
        );
        assert_eq!(split_dd("http://x/y"), (None, "http://x/y"));
        assert_eq!(split_dd("/a/b"), (None, "/a/b"));
        let s = dd_spec(SourceType::DdTxz).unwrap();
        assert_eq!(s.source_type(), Some(SourceType::DdTxz));
        assert_eq!(
            DdSpec {
                compression: Compression::Zstd,
                tar: true
            }
            .source_type(),
            None
        );
    }
}
