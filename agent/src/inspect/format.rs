//! The real format of an image, from its bytes (the source layer's detection: compression
//! magic, a tar header, a partition table), the MAAS filetype that describes it, and the check
//! of a declared filetype against it.

use super::report::Report;
use crate::source::compression::Compression;
use crate::source::detect;
use crate::source::{DdSpec, SourceType};

/// What is inside the compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// A whole disk: a partition table at the start.
    Disk,
    /// A tar archive whose first file is a disk image (MAAS's `ddtgz` family).
    DiskInTar,
    /// A root filesystem tree as a tar archive (`tgz` family).
    RootTarball,
    /// Neither a tar archive nor a partition table (a bare filesystem, or something else).
    Unknown,
}

impl Layout {
    pub fn name(self) -> &'static str {
        match self {
            Layout::Disk => "disk",
            Layout::DiskInTar => "disk-in-tar",
            Layout::RootTarball => "root-tarball",
            Layout::Unknown => "unknown",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Format {
    pub compression: Compression,
    pub layout: Layout,
}

/// MAAS's upload filetype for a curtin type: the type without its dash (`dd-gz` -> `ddgz`).
pub fn filetype_of(t: SourceType) -> String {
    t.prefix().replace('-', "")
}

/// The curtin type of an upload filetype (`ddgz` -> dd-gz), for the types MAAS (and deployer)
/// know; fsimage types are not uploads.
pub fn source_type_of(filetype: &str) -> Option<SourceType> {
    SourceType::ALL
        .into_iter()
        .filter(|t| t.is_dd() || t.is_tarball())
        .find(|t| filetype_of(*t) == filetype.trim().to_ascii_lowercase())
}

/// Filetypes deployer takes that MAAS's upload refuses.
const OURS: &[&str] = &["ddzst", "tzst"];

impl Format {
    /// The curtin type that describes these bytes, if one does.
    pub fn source_type(self) -> Option<SourceType> {
        match self.layout {
            Layout::Disk | Layout::DiskInTar => DdSpec {
                compression: self.compression,
                tar: self.layout == Layout::DiskInTar,
            }
            .source_type(),
            Layout::RootTarball => Some(tarball_type(self.compression)),
            Layout::Unknown => None,
        }
    }

    pub fn describe(self) -> String {
        match self.layout {
            Layout::Disk => detect::describe(DdSpec {
                compression: self.compression,
                tar: false,
            }),
            Layout::DiskInTar => format!(
                "{} holding a disk image",
                detect::describe(DdSpec {
                    compression: self.compression,
                    tar: true
                })
            ),
            Layout::RootTarball => format!(
                "{} of a root filesystem",
                detect::describe(DdSpec {
                    compression: self.compression,
                    tar: true
                })
            ),
            Layout::Unknown => format!(
                "{} stream that is neither a tar archive nor a disk image with a partition table",
                self.compression.name()
            ),
        }
    }
}

/// An uncompressed root tar has no MAAS type of its own: curtin's tar detects the compression,
/// so it deploys as `tgz`.
fn tarball_type(c: Compression) -> SourceType {
    match c {
        Compression::Bzip2 => SourceType::Tbz,
        Compression::Xz => SourceType::Txz,
        Compression::Zstd => SourceType::Tzst,
        Compression::Gzip | Compression::None => SourceType::Tgz,
    }
}

/// What a declared type promises, in words.
fn describe_type(t: SourceType) -> String {
    match crate::source::kind::dd_spec(t) {
        Some(s) if s.tar => format!("{} holding a disk image", detect::describe(s)),
        Some(s) => detect::describe(s),
        None => {
            let c = match t {
                SourceType::Tbz => Compression::Bzip2,
                SourceType::Txz => Compression::Xz,
                SourceType::Tzst => Compression::Zstd,
                _ => Compression::Gzip,
            };
            format!("a {} root tarball", c.name())
        }
    }
}

/// A partition table at the start of a disk: the MBR signature, or a GPT header for 512- or
/// 4096-byte sectors.
pub fn has_partition_table(head: &[u8]) -> bool {
    let gpt_at = |o: usize| head.len() >= o + 8 && &head[o..o + 8] == b"EFI PART";
    gpt_at(512) || gpt_at(4096) || (head.len() >= 512 && head[510..512] == [0x55, 0xaa])
}

/// The `format` and `filetype` checks.
pub fn report(r: &mut Report, found: Format, declared: Option<&str>) {
    r.facts.compression = Some(
        match found.compression {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Xz => "xz",
            Compression::Bzip2 => "bzip2",
            Compression::Zstd => "zstd",
        }
        .into(),
    );
    r.facts.layout = Some(found.layout.name().into());
    let Some(t) = found.source_type() else {
        let why = match found.layout {
            Layout::DiskInTar => "no MAAS or curtin filetype describes a zstd tar archive holding a disk image: compress the disk image itself (ddzst) or use ddtxz",
            _ => "MAAS deploys disk images (with a partition table) and root tarballs only",
        };
        r.error("format", format!("{}: {why}", found.describe()));
        return;
    };
    let ft = filetype_of(t);
    r.facts.filetype = Some(ft.clone());
    r.facts.source_type = Some(t.prefix().into());
    if OURS.contains(&ft.as_str()) {
        r.warn(
            "format",
            format!("{}: filetype {ft} is deployer's own; MAAS's upload refuses it (recompress with gzip or xz for MAAS)", found.describe()),
        );
    } else if found.layout == Layout::RootTarball && found.compression == Compression::None {
        r.warn(
            "format",
            format!("{}: MAAS has no uncompressed tarball filetype; upload as tgz (curtin's tar detects the compression) or compress it", found.describe()),
        );
    } else {
        r.ok(
            "format",
            format!("{}: upload it with filetype {ft}", found.describe()),
        );
    }
    let Some(d) = declared else {
        return;
    };
    let Some(dt) = source_type_of(d) else {
        let known: Vec<String> = SourceType::ALL
            .into_iter()
            .filter(|t| t.is_dd() || t.is_tarball())
            .map(filetype_of)
            .collect();
        r.error(
            "filetype",
            format!(
                "--filetype {d}: not a filetype; one of {}",
                known.join(", ")
            ),
        );
        return;
    };
    let dft = filetype_of(dt);
    if dt == t {
        r.ok("filetype", format!("declared {dft} matches the image"));
        return;
    }
    let consequence = match (dt.is_dd(), t.is_dd()) {
        (true, true) if crate::source::kind::dd_spec(dt).is_some_and(|s| s.tar) => {
            " (curtin would fail with \"tar: This does not look like a tar archive\")"
        }
        (true, true) => " (curtin would decompress it with the wrong tool and write garbage)",
        (true, false) => {
            " (curtin would write the tarball's bytes onto the disk as if it were a disk image)"
        }
        (false, true) => " (curtin would try to unpack the disk image as a root tarball and fail)",
        (false, false) => "",
    };
    r.error(
        "filetype",
        format!(
            "declared {dft} ({}) but the image is {}{consequence}: upload it with filetype {ft}",
            describe_type(dt),
            found.describe()
        ),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inspect::report::Verdict;

    #[test]
    fn filetypes_round_trip() {
        assert_eq!(filetype_of(SourceType::DdGz), "ddgz");
        assert_eq!(source_type_of("DDTGZ"), Some(SourceType::DdTgz));
        assert_eq!(source_type_of("tzst"), Some(SourceType::Tzst));
        assert_eq!(source_type_of("fsimage"), None);
    }

    #[test]
    fn ddgz_declared_ddtgz_names_the_right_filetype() {
        let mut r = Report::new("x");
        let f = Format {
            compression: Compression::Gzip,
            layout: Layout::Disk,
        };
        report(&mut r, f, Some("ddtgz"));
        assert_eq!(r.checks[0].verdict, Verdict::Ok);
        assert!(r.checks[0].reason.contains("filetype ddgz"));
        let c = &r.checks[1];
        assert_eq!(c.verdict, Verdict::Error);
        assert!(c.reason.contains("declared ddtgz"), "{}", c.reason);
        assert!(
            c.reason.contains("upload it with filetype ddgz"),
            "{}",
            c.reason
        );
        assert!(
            c.reason.contains("does not look like a tar archive"),
            "{}",
            c.reason
        );
    }

    #[test]
    fn unknown_and_zstd_tar() {
        let mut r = Report::new("x");
        let f = Format {
            compression: Compression::Zstd,
            layout: Layout::DiskInTar,
        };
        report(&mut r, f, Some("ddlz4"));
        assert_eq!(r.checks[0].verdict, Verdict::Error);
        let mut r = Report::new("x");
        let f = Format {
            compression: Compression::Zstd,
            layout: Layout::Disk,
        };
        report(&mut r, f, Some("zz"));
        assert_eq!(r.checks[0].verdict, Verdict::Warning);
        assert!(r.checks[1].reason.contains("not a filetype"));
    }

    #[test]
    fn tables() {
        let mut mbr = vec![0u8; 1024];
        assert!(!has_partition_table(&mbr));
        mbr[510] = 0x55;
        mbr[511] = 0xaa;
        assert!(has_partition_table(&mbr));
        let mut gpt = vec![0u8; 4608];
        gpt[4096..4104].copy_from_slice(b"EFI PART");
        assert!(has_partition_table(&gpt));
    }
}
