//! Source types (curtin's prefixes) as far as the dd path needs them.
//!
//! TODO(wt-model): switch to `preseed::sources::{Source, SourceType, parse}` once that lands;
//! this local type has the same variant names.

use super::detect::Compression;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceType {
    Tgz,
    Tbz,
    Txz,
    Tzst,
    DdTgz,
    DdTbz,
    DdTxz,
    DdTar,
    DdBz2,
    DdGz,
    DdXz,
    DdRaw,
    DdZst,
    Fsimage,
    FsimageLayered,
}

const PREFIXES: &[(&str, SourceType)] = &[
    ("tgz", SourceType::Tgz),
    ("tbz", SourceType::Tbz),
    ("txz", SourceType::Txz),
    ("tzst", SourceType::Tzst),
    ("dd-tgz", SourceType::DdTgz),
    ("dd-tbz", SourceType::DdTbz),
    ("dd-txz", SourceType::DdTxz),
    ("dd-tar", SourceType::DdTar),
    ("dd-bz2", SourceType::DdBz2),
    ("dd-gz", SourceType::DdGz),
    ("dd-xz", SourceType::DdXz),
    ("dd-raw", SourceType::DdRaw),
    ("dd-zst", SourceType::DdZst),
    ("fsimage", SourceType::Fsimage),
    ("fsimage-layered", SourceType::FsimageLayered),
];

impl SourceType {
    pub fn prefix(self) -> &'static str {
        PREFIXES
            .iter()
            .find(|(_, t)| *t == self)
            .map(|(p, _)| *p)
            .unwrap()
    }

    pub fn from_prefix(p: &str) -> Option<Self> {
        PREFIXES.iter().find(|(s, _)| *s == p).map(|(_, t)| *t)
    }

    pub fn is_dd(self) -> bool {
        self.prefix().starts_with("dd-")
    }

    /// What a dd type promises about its bytes.
    pub fn dd_spec(self) -> Option<DdSpec> {
        use Compression::*;
        let (compression, tar) = match self {
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
}

/// The layers of a dd source: an optional compression around an optional tar around the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DdSpec {
    pub compression: Compression,
    pub tar: bool,
}

impl DdSpec {
    /// The curtin type that describes these layers, if there is one.
    pub fn source_type(self) -> Option<SourceType> {
        SourceType::DdRaw
            .dd_candidates()
            .into_iter()
            .find(|t| t.dd_spec() == Some(self))
    }
}

impl SourceType {
    fn dd_candidates(self) -> Vec<SourceType> {
        PREFIXES
            .iter()
            .map(|(_, t)| *t)
            .filter(|t| t.is_dd())
            .collect()
    }
}

/// Split `dd-gz:http://...` into a declared dd type and the uri. A string without a known dd
/// prefix has no declared type: its format is detected.
pub fn split_dd(source: &str) -> (Option<SourceType>, &str) {
    if let Some((p, rest)) = source.split_once(':') {
        if let Some(t) = SourceType::from_prefix(p).filter(|t| t.is_dd()) {
            return (Some(t), rest);
        }
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
        let s = SourceType::DdTxz.dd_spec().unwrap();
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
