//! Unpacking a tar stream into a target directory the way GNU tar `-xpS --numeric-owner
//! --xattrs --xattrs-include='*'` does, without ever writing outside the target.
//!
//! The tar crate splits the stream into raw members; the rest is ours: PAX records (the crate's
//! parser splits values on newlines, which breaks binary xattrs and multi-line ACL text), GNU
//! long names, GNU and PAX sparse maps. The file system work is [`super::tree`]'s (the crate
//! writes device nodes and FIFOs as regular files and sets xattrs before the owner, and Linux
//! drops `security.capability` on chown).
//!
//! Safety: an entry path with `..` or a leading `/` is refused (a source error: the archive is
//! hostile); everything else is [`super::tree`]: parents resolved inside the target, links
//! leading out of it refused, entries made without following a link.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use tar::EntryType;

use super::tree::{Meta, Tree};
use crate::error::{Kind, KindExt};
use crate::io::EarlyFlush;

/// What was unpacked, for the log.
#[derive(Debug, Default, Clone, Copy)]
pub struct Stats {
    pub entries: u64,
    pub bytes: u64,
}

/// Unpack every entry of the tar stream `reader` into `target` (an existing directory),
/// telling `flush` how many bytes of file data were written. Errors name the entry; a hostile
/// archive is [`Kind::Source`].
pub fn unpack<R: Read>(reader: R, target: &Path, flush: &mut EarlyFlush) -> Result<Stats> {
    let mut u = Unpacker {
        tree: Tree::open(target)?,
        buf: vec![0u8; 256 * 1024],
        stats: Stats::default(),
    };
    // Modes come from the archive, not the umask (restored when done).
    let _umask = UmaskGuard(unsafe { libc::umask(0) });
    let mut archive = tar::Archive::new(reader);
    let mut pending = Pending::default();
    let mut last: Option<Vec<u8>> = None;
    let after = |last: &Option<Vec<u8>>| match last {
        Some(n) => format!(
            "reading the tar entry after {:?}",
            String::from_utf8_lossy(n)
        ),
        None => "reading the first tar entry".to_string(),
    };
    for entry in archive.entries().context("reading tar stream")?.raw(true) {
        let mut entry = entry.with_context(|| after(&last)).kind(Kind::Source)?;
        match entry.header().entry_type() {
            EntryType::XHeader => {
                pending.pax = parse_pax(&read_member(&mut entry)?).with_context(|| after(&last))?;
                continue;
            }
            EntryType::XGlobalHeader => {
                read_member(&mut entry).with_context(|| after(&last))?;
                continue;
            }
            EntryType::GNULongName => {
                pending.long_name = Some(trim_nul(
                    read_member(&mut entry).with_context(|| after(&last))?,
                ));
                continue;
            }
            EntryType::GNULongLink => {
                pending.long_link = Some(trim_nul(
                    read_member(&mut entry).with_context(|| after(&last))?,
                ));
                continue;
            }
            _ => {}
        }
        let p = std::mem::take(&mut pending);
        let name = p.path(&entry);
        let before = u.stats.bytes;
        u.entry(&mut entry, p)
            .with_context(|| format!("extracting {:?}", String::from_utf8_lossy(&name)))?;
        flush.wrote(u.stats.bytes - before);
        last = Some(name);
    }
    u.tree.finish()?;
    Ok(u.stats)
}

struct UmaskGuard(libc::mode_t);

impl Drop for UmaskGuard {
    fn drop(&mut self) {
        unsafe { libc::umask(self.0) };
    }
}

/// What the members before an entry said about it.
#[derive(Default)]
struct Pending {
    pax: Vec<(Vec<u8>, Vec<u8>)>,
    long_name: Option<Vec<u8>>,
    long_link: Option<Vec<u8>>,
}

impl Pending {
    fn get(&self, key: &[u8]) -> Option<&[u8]> {
        self.pax
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_slice())
    }

    fn num(&self, key: &[u8]) -> Result<Option<u64>> {
        self.get(key)
            .map(|v| {
                let v = std::str::from_utf8(v)?;
                let v = v.split('.').next().unwrap_or(v);
                v.parse::<u64>()
                    .with_context(|| format!("PAX {} = {v:?}", String::from_utf8_lossy(key)))
            })
            .transpose()
    }

    fn path<R: Read>(&self, e: &tar::Entry<R>) -> Vec<u8> {
        if let Some(n) = self.get(b"GNU.sparse.name") {
            return n.to_vec();
        }
        if let Some(p) = self.get(b"path") {
            return p.to_vec();
        }
        if let Some(n) = &self.long_name {
            return n.clone();
        }
        e.header().path_bytes().into_owned()
    }

    fn link<R: Read>(&self, e: &tar::Entry<R>) -> Option<Vec<u8>> {
        if let Some(p) = self.get(b"linkpath") {
            return Some(p.to_vec());
        }
        if let Some(n) = &self.long_link {
            return Some(n.clone());
        }
        e.header().link_name_bytes().map(|c| c.into_owned())
    }
}

fn read_member<R: Read>(e: &mut tar::Entry<R>) -> Result<Vec<u8>> {
    if e.header().entry_size()? > 16 << 20 {
        bail!("a tar metadata member larger than 16 MiB");
    }
    let mut v = Vec::new();
    e.read_to_end(&mut v)
        .context("reading tar metadata member")?;
    Ok(v)
}

fn trim_nul(mut v: Vec<u8>) -> Vec<u8> {
    while v.last() == Some(&0) {
        v.pop();
    }
    v
}

/// PAX records: `LEN key=value\n`, LEN counting the whole record; values may hold any byte.
pub fn parse_pax(mut data: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let mut out = Vec::new();
    while !data.is_empty() && data[0] != 0 {
        let sp = data
            .iter()
            .position(|&b| b == b' ')
            .context("malformed PAX record")?;
        let len: usize = std::str::from_utf8(&data[..sp])
            .ok()
            .and_then(|s| s.parse().ok())
            .context("malformed PAX record length")?;
        if len <= sp + 1 || len > data.len() || data[len - 1] != b'\n' {
            bail!("malformed PAX record");
        }
        let kv = &data[sp + 1..len - 1];
        let eq = kv
            .iter()
            .position(|&b| b == b'=')
            .context("PAX record without '='")?;
        out.push((kv[..eq].to_vec(), kv[eq + 1..].to_vec()));
        data = &data[len..];
    }
    Ok(out)
}

/// Where the data of a regular file goes: all of it in order, or segments of a sparse file.
enum Layout {
    Plain,
    /// PAX sparse 1.0: the map is at the start of the data.
    PaxMapInData {
        real_size: u64,
    },
    Segments {
        map: Vec<(u64, u64)>,
        real_size: u64,
    },
}

/// An archive path made relative and checked: no `..`, not absolute. `None` for `.`. A
/// refusal is the archive's fault (a source error).
pub fn sanitize(raw: &[u8]) -> Result<Option<PathBuf>> {
    let p = Path::new(OsStr::from_bytes(raw));
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            Component::ParentDir => {
                return Err(anyhow!("refusing a path with a '..' component")).kind(Kind::Source)
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(anyhow!("refusing an absolute path")).kind(Kind::Source)
            }
        }
    }
    Ok((!out.as_os_str().is_empty()).then_some(out))
}

struct Unpacker {
    tree: Tree,
    buf: Vec<u8>,
    stats: Stats,
}

impl Unpacker {
    fn entry<R: Read>(&mut self, e: &mut tar::Entry<R>, p: Pending) -> Result<()> {
        let kind = e.header().entry_type();
        if let Some(size) = p.num(b"size")? {
            if size != e.header().entry_size()? {
                return Err(anyhow!(
                    "PAX size records (members over 8 GiB) are not supported"
                ))
                .kind(Kind::Source);
            }
        }
        let Some(rel) = sanitize(&p.path(e))? else {
            // "./": the target root itself; GNU tar applies its metadata too.
            let meta = meta(e, &p).kind(Kind::Source)?;
            return self.tree.root_meta(meta);
        };
        self.stats.entries += 1;
        let meta = meta(e, &p).kind(Kind::Source)?;
        let name = rel
            .file_name()
            .expect("a normal last component")
            .to_os_string();
        let dir = self
            .tree
            .parent_dir(rel.parent().unwrap_or(Path::new("")))?;
        let t = &mut self.tree;
        match kind {
            EntryType::Directory => t.dir(dir, &name, &rel, meta),
            EntryType::Symlink => {
                let link = p
                    .link(e)
                    .context("symlink without a target")
                    .kind(Kind::Source)?;
                t.symlink(dir, &name, &rel, &link, &meta)
            }
            EntryType::Link => {
                let link = p
                    .link(e)
                    .context("hard link without a target")
                    .kind(Kind::Source)?;
                let src = sanitize(&link)
                    .context("hard link target")?
                    .ok_or_else(|| anyhow!("hard link to the target root"))
                    .kind(Kind::Source)?;
                t.hardlink(dir, &name, &rel, &src)
            }
            EntryType::Fifo => t.node(dir, &name, &rel, libc::S_IFIFO, 0, &meta),
            EntryType::Char | EntryType::Block => {
                // Read only for devices: GNU tar leaves the fields of other types empty or
                // zero-filled, which the tar crate cannot parse.
                let h = e.header();
                let major = h.device_major().kind(Kind::Source)?.unwrap_or(0);
                let minor = h.device_minor().kind(Kind::Source)?.unwrap_or(0);
                let fmt = if kind == EntryType::Char {
                    libc::S_IFCHR
                } else {
                    libc::S_IFBLK
                };
                t.node(dir, &name, &rel, fmt, libc::makedev(major, minor), &meta)
            }
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                let layout = layout(e, &p).kind(Kind::Source)?;
                let mut f = t.file(dir, &name, &rel, meta.mode)?;
                let written = match layout {
                    Layout::Plain => copy_plain(e, &mut f, &mut self.buf)?,
                    Layout::PaxMapInData { real_size } => {
                        let map = read_data_map(e)?;
                        copy_segments(e, &mut f, &mut self.buf, &map, real_size)?
                    }
                    Layout::Segments { map, real_size } => {
                        copy_segments(e, &mut f, &mut self.buf, &map, real_size)?
                    }
                };
                self.stats.bytes += written;
                self.tree.finish_file(&f, &rel, &meta)
            }
            other => Err(anyhow!("unsupported tar entry type {other:?}")).kind(Kind::Source),
        }
    }
}

fn meta<R: Read>(e: &tar::Entry<R>, p: &Pending) -> Result<Meta> {
    let h = e.header();
    let mut m = Meta {
        mode: h.mode()? & 0o7777,
        uid: p.num(b"uid")?.unwrap_or(h.uid()?) as u32,
        gid: p.num(b"gid")?.unwrap_or(h.gid()?) as u32,
        mtime: match p.get(b"mtime") {
            Some(v) => parse_time(v)?,
            None => (h.mtime()? as i64, 0),
        },
        xattrs: Vec::new(),
        acl_access: None,
        acl_default: None,
    };
    let has_acl_text = p.get(b"SCHILY.acl.access").is_some();
    for (key, value) in &p.pax {
        if let Some(name) = key.strip_prefix(b"SCHILY.xattr.") {
            // The ACL xattrs and their text form say the same thing: the binary wins.
            m.xattrs.push((name.to_vec(), value.clone()));
        } else if key == b"SCHILY.acl.access" {
            m.acl_access = Some(value.clone());
        } else if key == b"SCHILY.acl.default" {
            m.acl_default = Some(value.clone());
        }
    }
    let has = |n: &[u8]| m.xattrs.iter().any(|(k, _)| k == n);
    if has(b"system.posix_acl_access") || !has_acl_text {
        m.acl_access = None;
    }
    if has(b"system.posix_acl_default") {
        m.acl_default = None;
    }
    Ok(m)
}

/// A PAX time `SECS[.FRACTION]` as seconds and nanoseconds.
fn parse_time(v: &[u8]) -> Result<(i64, i64)> {
    let v = std::str::from_utf8(v)?;
    let (s, frac) = v.split_once('.').unwrap_or((v, ""));
    let secs: i64 = s.parse().with_context(|| format!("PAX mtime {v:?}"))?;
    let mut digits: String = frac.chars().take(9).collect();
    while digits.len() < 9 {
        digits.push('0');
    }
    let nsec: i64 = digits.parse().with_context(|| format!("PAX mtime {v:?}"))?;
    Ok((secs, if secs < 0 && nsec > 0 { -nsec } else { nsec }))
}

fn copy_plain<R: Read>(r: &mut R, f: &mut File, buf: &mut [u8]) -> Result<u64> {
    let mut total = 0u64;
    loop {
        let n = match r.read(buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e).context("reading tar data"),
        };
        f.write_all(&buf[..n]).context("writing file")?;
        total += n as u64;
    }
}

/// The sparse layout of a regular member, from its GNU header or its PAX records.
fn layout<R: Read>(e: &tar::Entry<R>, p: &Pending) -> Result<Layout> {
    if e.header().entry_type() == EntryType::GNUSparse {
        let gnu = e
            .header()
            .as_gnu()
            .context("sparse member without a GNU header")?;
        if gnu.is_extended() {
            bail!("GNU old-format sparse files with more than 4 segments are not supported");
        }
        let mut map = Vec::new();
        for s in gnu.sparse.iter() {
            if s.is_empty() {
                break;
            }
            map.push((s.offset()?, s.length()?));
        }
        return Ok(Layout::Segments {
            map,
            real_size: gnu.real_size()?,
        });
    }
    let real_size = p
        .num(b"GNU.sparse.realsize")?
        .or(p.num(b"GNU.sparse.size")?);
    match (
        p.get(b"GNU.sparse.major"),
        p.get(b"GNU.sparse.map"),
        real_size,
    ) {
        (Some(b"1"), _, Some(real_size)) => Ok(Layout::PaxMapInData { real_size }),
        (None, Some(m), Some(real_size)) => {
            let nums = std::str::from_utf8(m)?
                .split(',')
                .map(|n| n.parse::<u64>().context("GNU.sparse.map"))
                .collect::<Result<Vec<_>>>()?;
            let map = nums
                .chunks(2)
                .filter(|c| c.len() == 2)
                .map(|c| (c[0], c[1]))
                .collect();
            Ok(Layout::Segments { map, real_size })
        }
        (None, None, None) => Ok(Layout::Plain),
        _ => bail!("unsupported PAX sparse format (use GNU tar's default 1.0 format)"),
    }
}

/// PAX sparse 1.0: decimal lines (count, then offset and size pairs) padded to a block.
fn read_data_map<R: Read>(r: &mut R) -> Result<Vec<(u64, u64)>> {
    let mut consumed = 0usize;
    let mut line = Vec::new();
    let mut next = |consumed: &mut usize| -> Result<u64> {
        line.clear();
        let mut b = [0u8; 1];
        loop {
            r.read_exact(&mut b).context("reading the sparse map")?;
            *consumed += 1;
            if b[0] == b'\n' {
                break;
            }
            line.push(b[0]);
            if line.len() > 24 {
                bail!("malformed sparse map");
            }
        }
        std::str::from_utf8(&line)?
            .parse()
            .context("malformed sparse map")
    };
    let count = next(&mut consumed)?;
    if count > 1 << 20 {
        bail!("sparse map with {count} segments");
    }
    let mut map = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let off = next(&mut consumed)?;
        let len = next(&mut consumed)?;
        map.push((off, len));
    }
    let pad = (512 - consumed % 512) % 512;
    io::copy(&mut r.take(pad as u64), &mut io::sink())?;
    Ok(map)
}

/// Write each data segment at its offset, leaving holes between, then set the real size.
fn copy_segments<R: Read>(
    r: &mut R,
    f: &mut File,
    buf: &mut [u8],
    map: &[(u64, u64)],
    real_size: u64,
) -> Result<u64> {
    let mut written = 0;
    for &(off, len) in map {
        f.seek(SeekFrom::Start(off))?;
        let mut left = len;
        while left > 0 {
            let want = buf.len().min(left as usize);
            let n = r.read(&mut buf[..want]).context("reading tar data")?;
            if n == 0 {
                bail!("tar stream ended inside a sparse file");
            }
            f.write_all(&buf[..n]).context("writing file")?;
            left -= n as u64;
        }
        written += len;
    }
    f.set_len(real_size).context("setting sparse file length")?;
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitize_refuses_parent_and_absolute() {
        assert!(sanitize(b"../etc/passwd").is_err());
        assert!(sanitize(b"a/../../b").is_err());
        assert!(sanitize(b"/etc/passwd").is_err());
        assert_eq!(sanitize(b"./").unwrap(), None);
        assert_eq!(
            sanitize(b"./usr/bin/").unwrap(),
            Some(PathBuf::from("usr/bin"))
        );
    }

    #[test]
    fn pax_values_may_hold_newlines_and_binary() {
        let v = b"11 a=x\ny\nz\n8 b=\n\x00\n\n";
        let r = parse_pax(v).unwrap();
        assert_eq!(r[0], (b"a".to_vec(), b"x\ny\nz".to_vec()));
        assert_eq!(r[1], (b"b".to_vec(), b"\n\x00\n".to_vec()));
        assert!(parse_pax(b"99 a=b\n").is_err());
    }
}
