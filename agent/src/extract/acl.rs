//! POSIX ACLs from GNU tar's `SCHILY.acl.access`/`SCHILY.acl.default` text records (written with
//! `--acls`) into the binary `system.posix_acl_*` xattr form the kernel takes.

use anyhow::{bail, Context, Result};

const VERSION: u32 = 2;
const UNDEFINED_ID: u32 = u32::MAX;

/// `user::rwx,user:1000:r-x,group::r-x,mask::r-x,other::r--` (commas or newlines; numeric
/// ids, or names known to the running system) to the xattr value.
pub fn text_to_xattr(text: &[u8]) -> Result<Vec<u8>> {
    let text = std::str::from_utf8(text).context("ACL text is not UTF-8")?;
    let mut entries: Vec<(u16, u16, u32)> = Vec::new();
    for item in text
        .split([',', '\n'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        let item = item.split('#').next().unwrap_or("").trim();
        let parts: Vec<&str> = item.split(':').collect();
        let (tag, qual, perm) = match parts.as_slice() {
            [t, q, p] => (*t, *q, *p),
            [t, p] => (*t, "", *p),
            _ => bail!("malformed ACL entry {item:?}"),
        };
        let perm = parse_perm(perm).with_context(|| format!("ACL entry {item:?}"))?;
        let (tag, id) = match (tag, qual.is_empty()) {
            ("user" | "u", true) => (0x01, UNDEFINED_ID),
            ("user" | "u", false) => (0x02, lookup(qual, true)?),
            ("group" | "g", true) => (0x04, UNDEFINED_ID),
            ("group" | "g", false) => (0x08, lookup(qual, false)?),
            ("mask" | "m", _) => (0x10, UNDEFINED_ID),
            ("other" | "o", _) => (0x20, UNDEFINED_ID),
            _ => bail!("unknown ACL tag in {item:?}"),
        };
        entries.push((tag, perm, id));
    }
    entries.sort_by_key(|&(t, _, id)| (t, id));
    let mut out = VERSION.to_le_bytes().to_vec();
    for (tag, perm, id) in entries {
        out.extend_from_slice(&tag.to_le_bytes());
        out.extend_from_slice(&perm.to_le_bytes());
        out.extend_from_slice(&id.to_le_bytes());
    }
    Ok(out)
}

fn parse_perm(p: &str) -> Result<u16> {
    let mut v = 0;
    for ch in p.chars() {
        v |= match ch {
            'r' => 4,
            'w' => 2,
            'x' => 1,
            '-' => 0,
            _ => bail!("bad permission {p:?}"),
        };
    }
    Ok(v)
}

fn lookup(q: &str, user: bool) -> Result<u32> {
    if let Ok(n) = q.parse() {
        return Ok(n);
    }
    let found = if user {
        nix::unistd::User::from_name(q)
            .ok()
            .flatten()
            .map(|u| u.uid.as_raw())
    } else {
        nix::unistd::Group::from_name(q)
            .ok()
            .flatten()
            .map(|g| g.gid.as_raw())
    };
    found.with_context(|| {
        format!(
            "unknown {} {q:?} in ACL",
            if user { "user" } else { "group" }
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acl_text_to_binary() {
        let v = text_to_xattr(b"user::rw-,user:1000:r--,group::r--,mask::r--,other::---").unwrap();
        assert_eq!(v.len(), 4 + 5 * 8);
        assert_eq!(&v[..4], &2u32.to_le_bytes());
        // user:1000 is the second entry, perm r (4).
        assert_eq!(&v[12..20], &[2, 0, 4, 0, 0xe8, 3, 0, 0]);
    }
}
