//! The decode stage: detect the layers of a dd source, check them against the declared type,
//! and hand the disk image (decompressed, out of its tar archive) to the caller.
//!
//! Decoders sit on a [`PeekReader`] and consume exactly their own stream, so the bytes after a
//! stream are visible: another member of the same format is decoded too (`cat a.gz b.gz`, as
//! zcat does), anything else is "trailing garbage" and fails the write.

use anyhow::{bail, Context, Result};
use std::io::{self, Read};

use super::compression::Compression;
use super::detect::{self, Found};
use super::igzip::GzipMember;
use super::kind::{DdSpec, SourceType};
use crate::io::PeekReader;

type Src<I> = PeekReader<I>;

enum Dec<I: Read> {
    Gz(GzipMember<Src<I>>),
    Xz(liblzma::bufread::XzDecoder<Src<I>>),
    Bz(bzip2::bufread::BzDecoder<Src<I>>),
    Zst(zstd::stream::read::Decoder<'static, Src<I>>),
}

impl<I: Read> Dec<I> {
    fn new(c: Compression, src: Src<I>) -> io::Result<Self> {
        Ok(match c {
            Compression::Gzip => Dec::Gz(GzipMember::new(src)),
            Compression::Xz => {
                let mut src = src;
                let threaded = super::xz::first_block_sized(src.peek(14)?);
                Dec::Xz(super::xz::decoder(src, threaded)?)
            }
            Compression::Bzip2 => Dec::Bz(bzip2::bufread::BzDecoder::new(src)),
            Compression::Zstd => {
                Dec::Zst(zstd::stream::read::Decoder::with_buffer(src)?.single_frame())
            }
            Compression::None => unreachable!("no decoder for uncompressed data"),
        })
    }

    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Dec::Gz(d) => d.read(buf),
            Dec::Xz(d) => d.read(buf),
            Dec::Bz(d) => d.read(buf),
            Dec::Zst(d) => d.read(buf),
        }
    }

    fn into_inner(self) -> Src<I> {
        match self {
            Dec::Gz(d) => d.into_inner(),
            Dec::Xz(d) => d.into_inner(),
            Dec::Bz(d) => d.into_inner(),
            Dec::Zst(d) => d.finish(),
        }
    }
}

/// A decompressing reader over one or more members, strict about what follows them.
pub struct Members<I: Read> {
    comp: Compression,
    src: Option<Src<I>>,
    dec: Option<Dec<I>>,
    /// Compressed bytes consumed before the current member (for error messages).
    out: u64,
}

impl<I: Read> Members<I> {
    pub fn new(comp: Compression, src: Src<I>) -> io::Result<Self> {
        let mut m = Members {
            comp,
            src: None,
            dec: None,
            out: 0,
        };
        if comp == Compression::None {
            m.src = Some(src);
        } else {
            m.dec = Some(Dec::new(comp, src)?);
        }
        Ok(m)
    }
}

impl<I: Read> Read for Members<I> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(src) = &mut self.src {
            return src.read(buf);
        }
        loop {
            let Some(dec) = &mut self.dec else {
                return Ok(0);
            };
            let n = dec.read(buf).map_err(|e| {
                if e.kind() == io::ErrorKind::UnexpectedEof {
                    io::Error::new(
                        e.kind(),
                        format!(
                            "the {} stream ends early: the image is truncated",
                            self.comp.name()
                        ),
                    )
                } else {
                    io::Error::new(
                        e.kind(),
                        format!(
                            "corrupt {} stream after {} image bytes: {e}",
                            self.comp.name(),
                            self.out
                        ),
                    )
                }
            })?;
            if n > 0 {
                self.out += n as u64;
                return Ok(n);
            }
            let mut src = self.dec.take().expect("decoder").into_inner();
            let next = src.peek(6)?;
            if next.is_empty() {
                return Ok(0);
            }
            if self.comp.starts_member(next) {
                self.dec = Some(Dec::new(self.comp, src)?);
                continue;
            }
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "trailing garbage after the {} stream (it ended after {} image bytes, then came {:02x?})",
                    self.comp.name(),
                    self.out,
                    next
                ),
            ));
        }
    }
}

/// The decompressed stream of `input` (compression detected from its magic bytes, or none),
/// whose start can be peeked, and the compression found.
pub fn decompressed<I: Read>(input: I) -> Result<(Compression, PeekReader<Members<I>>)> {
    let mut pk = PeekReader::new(input, 1 << 20);
    let head = pk.peek(6).context("reading the start of the source")?;
    if head.is_empty() {
        bail!("the source is empty");
    }
    let comp = Compression::sniff(head);
    let members = Members::new(comp, pk)?;
    Ok((comp, PeekReader::new(members, 1 << 20)))
}

/// Detect, check and decode `input`, calling `f` with the disk image stream. `f` must read it
/// to the end. Returns what was found. Fails before `f` is called when the declared type does
/// not match the bytes, so nothing has been written.
pub fn with_image<I, F>(input: I, declared: Option<SourceType>, f: F) -> Result<Found>
where
    I: Read,
    F: FnOnce(&mut dyn Read, Found) -> Result<()>,
{
    let (comp, mut dp) = decompressed(input)?;
    let first = dp.peek(512).context("decoding the start of the image")?;
    let found = DdSpec {
        compression: comp,
        tar: detect::is_tar(first),
    };
    if let Some(d) = declared {
        if let Some(msg) = detect::mismatch(d, found) {
            bail!(msg);
        }
    }
    if !found.tar {
        f(&mut dp, found)?;
        return Ok(found);
    }
    {
        let mut archive = tar::Archive::new(&mut dp);
        let mut entries = archive.entries().context("reading the tar archive")?;
        let mut image = None;
        for e in entries.by_ref() {
            let e = e.context("reading the tar archive")?;
            let t = e.header().entry_type();
            if t.is_file() || t.is_gnu_sparse() {
                image = Some(e);
                break;
            }
        }
        let Some(mut entry) = image else {
            bail!("the tar archive holds no regular file (the disk image)");
        };
        let name = entry
            .path()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        tracing::info!("disk image in the tar archive: {name}");
        f(&mut entry, found)?;
        drop(entry);
        for e in entries {
            let e = e.context("reading the rest of the tar archive")?;
            if e.header().entry_type().is_file() {
                let p = e
                    .path()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default();
                tracing::warn!(
                    "ignoring {p} in the tar archive: the disk image is its first file ({name})"
                );
            }
        }
    }
    // The archive's end padding, then the end of the compressed stream (and its checks).
    io::copy(&mut dp, &mut io::sink()).context("reading the end of the tar archive")?;
    Ok(found)
}

/// A tar archive, plain or compressed (gzip, bzip2, xz, zstd; detected, concatenated members
/// allowed, trailing garbage refused): the decompressed stream.
pub fn tar_stream<I: Read>(input: I) -> Result<Members<I>> {
    let mut pk = PeekReader::new(input, 1 << 20);
    let head = pk.peek(512).context("reading the start of the source")?;
    if head.is_empty() {
        bail!("the source is empty");
    }
    let comp = Compression::sniff(head);
    if comp == Compression::None && !detect::is_tar(head) {
        bail!(
            "not a tar archive (plain, gzip, bzip2, xz or zstd): unknown magic bytes {:02x?}",
            &head[..head.len().min(8)]
        );
    }
    Ok(Members::new(comp, pk)?)
}

pub use crate::io::read_full;

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn image() -> Vec<u8> {
        (0..300_000u32).map(|i| (i % 251) as u8).collect()
    }

    fn gz(d: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(d).unwrap();
        e.finish().unwrap()
    }

    fn decode(src: &[u8], declared: Option<SourceType>) -> Result<(Vec<u8>, Found)> {
        let mut out = Vec::new();
        let found = with_image(src, declared, |r, _| {
            r.read_to_end(&mut out)?;
            Ok(())
        })?;
        Ok((out, found))
    }

    #[test]
    fn gzip_members_and_garbage() {
        let img = image();
        let mut two = gz(&img[..1000]);
        two.extend(gz(&img[1000..]));
        assert_eq!(decode(&two, Some(SourceType::DdGz)).unwrap().0, img);
        let mut bad = gz(&img);
        bad.extend(b"garbage!");
        let e = decode(&bad, None).unwrap_err();
        assert!(format!("{e:#}").contains("trailing garbage"), "{e:#}");
        let g = gz(&img);
        let e = decode(&g[..g.len() / 2], None).unwrap_err();
        assert!(format!("{e:#}").contains("truncated"), "{e:#}");
    }

    #[test]
    fn zstd_and_tar() {
        let img = image();
        let z = zstd::encode_all(&img[..], 3).unwrap();
        assert_eq!(decode(&z, Some(SourceType::DdZst)).unwrap().0, img);
        let e = decode(&z[..z.len() - 10], None).unwrap_err();
        assert!(format!("{e:#}").contains("truncated"), "{e:#}");
        let mut t = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_ustar();
        h.set_size(img.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        t.append_data(&mut h, "disk.img", &img[..]).unwrap();
        let tgz = gz(&t.into_inner().unwrap());
        let (out, found) = decode(&tgz, Some(SourceType::DdTgz)).unwrap();
        assert_eq!(out, img);
        assert!(found.tar);
        let e = decode(&tgz, Some(SourceType::DdGz)).unwrap_err();
        assert!(format!("{e:#}").contains("use dd-tgz:"), "{e:#}");
    }
}
