//! `sources`: what to install. A mapping (name -> source, handled in sorted name order), a list,
//! or a single string. A source is a string normalised like curtin's `util.sanitize_source`
//! (`dd-gz:http://...`; no known prefix means tgz) or a mapping `{type, uri}`, to which deployer
//! adds optional `sha256`, `sha512` and `size` (checked while streaming) and `mirrors` (other
//! URLs of the same object, tried in order when the one in use fails for good).

use serde::Deserialize;
use std::collections::BTreeMap;
use yaml_serde::Value;

/// How a source is written, named by curtin's prefixes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum SourceType {
    Tgz,
    Tbz,
    Txz,
    /// deployer extension: a zstd-compressed root tarball.
    Tzst,
    DdTgz,
    DdTbz,
    DdTxz,
    DdTar,
    DdBz2,
    DdGz,
    DdXz,
    DdRaw,
    /// deployer extension: a zstd-compressed raw disk image.
    DdZst,
    Fsimage,
    FsimageLayered,
}

impl SourceType {
    pub const ALL: [SourceType; 15] = [
        SourceType::Tgz,
        SourceType::Tbz,
        SourceType::Txz,
        SourceType::Tzst,
        SourceType::DdTgz,
        SourceType::DdTbz,
        SourceType::DdTxz,
        SourceType::DdTar,
        SourceType::DdBz2,
        SourceType::DdGz,
        SourceType::DdXz,
        SourceType::DdRaw,
        SourceType::DdZst,
        SourceType::Fsimage,
        SourceType::FsimageLayered,
    ];

    /// The type name as written in a config (`dd-gz`), without the colon.
    pub fn prefix(self) -> &'static str {
        match self {
            SourceType::Tgz => "tgz",
            SourceType::Tbz => "tbz",
            SourceType::Txz => "txz",
            SourceType::Tzst => "tzst",
            SourceType::DdTgz => "dd-tgz",
            SourceType::DdTbz => "dd-tbz",
            SourceType::DdTxz => "dd-txz",
            SourceType::DdTar => "dd-tar",
            SourceType::DdBz2 => "dd-bz2",
            SourceType::DdGz => "dd-gz",
            SourceType::DdXz => "dd-xz",
            SourceType::DdRaw => "dd-raw",
            SourceType::DdZst => "dd-zst",
            SourceType::Fsimage => "fsimage",
            SourceType::FsimageLayered => "fsimage-layered",
        }
    }

    /// A whole-disk image (curtin: the type starts with `dd-`).
    pub fn is_dd(self) -> bool {
        self.prefix().starts_with("dd-")
    }

    /// A root tarball extracted onto the mounted target.
    pub fn is_tarball(self) -> bool {
        matches!(
            self,
            SourceType::Tgz | SourceType::Tbz | SourceType::Txz | SourceType::Tzst
        )
    }

    pub fn from_name(name: &str) -> Option<SourceType> {
        SourceType::ALL.into_iter().find(|t| t.prefix() == name)
    }
}

impl std::fmt::Display for SourceType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.prefix())
    }
}

/// One source.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Source {
    /// Its key in the `sources` mapping (list entries are named `00`, `01`, ...).
    pub name: String,
    pub kind: SourceType,
    /// The URI with the type prefix removed (`http://...`, `file://...`, `cp://...`, a path).
    pub uri: String,
    /// Expected digests and size of the source as served (deployer extension).
    pub sha256: Option<String>,
    pub sha512: Option<String>,
    pub size: Option<u64>,
    /// Other http(s) URLs of the same object (deployer extension).
    pub mirrors: Vec<String>,
}

/// Normalise a source string as curtin's `sanitize_source` does: a known `<type>:` prefix sets
/// the type and is stripped; `squashfs://` (or a name ending in `squashfs`/`squash`) is fsimage;
/// anything else, URLs included, is a tgz with the string unchanged.
pub fn parse(s: &str) -> Source {
    let (kind, uri) = classify(s);
    Source {
        name: String::new(),
        kind,
        uri: uri.to_string(),
        sha256: None,
        sha512: None,
        size: None,
        mirrors: Vec::new(),
    }
}

fn classify(s: &str) -> (SourceType, &str) {
    // Longest names first, so that `fsimage-layered:` is not read as `fsimage:`.
    let mut types = SourceType::ALL;
    types.sort_by_key(|t| std::cmp::Reverse(t.prefix().len()));
    for t in types {
        if let Some(rest) = s.strip_prefix(t.prefix()).and_then(|r| r.strip_prefix(':')) {
            return (t, rest);
        }
    }
    if let Some(rest) = s.strip_prefix("squashfs://") {
        return (SourceType::Fsimage, rest);
    }
    if let Some(rest) = s.strip_prefix("squashfs:") {
        return (SourceType::Fsimage, rest);
    }
    if s.ends_with("squashfs") || s.ends_with("squash") {
        return (SourceType::Fsimage, s);
    }
    (SourceType::Tgz, s)
}

/// URL schemes a source may use without a type prefix (curtin's `cp://` copies a directory).
const SCHEMES: [&str; 4] = ["http", "https", "file", "cp"];

/// Refuse a source string that starts with a prefix no one knows (`ddraw:http://...`, a typo
/// of `dd-raw:`): curtin would take the whole string for a tarball URL and fail much later.
pub fn check_prefix(s: &str) -> Result<(), String> {
    let Some((head, _)) = s.split_once(':') else {
        return Ok(());
    };
    let looks_like_prefix = head.starts_with(|c: char| c.is_ascii_alphabetic())
        && head
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '+' | '.' | '_'));
    let known = SourceType::from_name(head).is_some()
        || head == "squashfs"
        || SCHEMES.contains(&head.to_ascii_lowercase().as_str());
    if !looks_like_prefix || known {
        return Ok(());
    }
    Err(format!(
        "unknown source prefix '{head}:' in '{s}' (known prefixes: {}; or a URL: {}; or a path)",
        SourceType::ALL
            .map(|t| format!("{}:", t.prefix()))
            .join(", "),
        SCHEMES.map(|t| format!("{t}://")).join(", ")
    ))
}

/// A mapping entry: `{type, uri}` (curtin trusts it as is), plus our checksum keys. Other keys
/// are accepted, as curtin uses the mapping as given (each gets a warning).
#[derive(Deserialize)]
struct Entry {
    #[serde(rename = "type")]
    kind: Option<String>,
    uri: String,
    #[serde(default, deserialize_with = "digest_text")]
    sha256: Option<String>,
    #[serde(default, deserialize_with = "digest_text")]
    sha512: Option<String>,
    #[serde(default, deserialize_with = "crate::size::de_opt")]
    size: Option<u64>,
    #[serde(default)]
    mirrors: Vec<String>,
}

/// The keys of a source mapping that mean something (curtin's, then deployer's).
const ENTRY_KEYS: &[&str] = &["type", "uri", "sha256", "sha512", "size", "mirrors"];

/// A digest must be text: one of digits only is a number to YAML 1.1 (`000...0` is 0, leading
/// zeros gone), which cannot be turned back into the digest.
fn digest_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s)),
        Value::Number(_) => Err(serde::de::Error::custom(
            "a digest of digits only is read as a number by YAML (1.1, as curtin reads it): quote it",
        )),
        other => Err(serde::de::Error::custom(format!(
            "must be a hex string, got {}",
            crate::issue::show(&other)
        ))),
    }
}

/// Read the `sources` value (mapping, list or string) into sources keyed by name. Errors carry
/// the key path below `sources`; `warnings` gets the keys of an entry that nothing reads.
pub fn from_value(
    v: &Value,
    warnings: &mut Vec<crate::issue::Issue>,
) -> Result<BTreeMap<String, Source>, crate::issue::Issue> {
    use crate::issue::Issue;
    let mut out = BTreeMap::new();
    match v {
        Value::Null => {}
        Value::String(s) => {
            check_prefix(s).map_err(|m| Issue::new("", m))?;
            out.insert("00".to_string(), named("00", parse(s)));
        }
        Value::Sequence(items) => {
            for (i, item) in items.iter().enumerate() {
                let name = format!("{i:02}");
                let at = format!("[{i}]");
                let src = entry(item).map_err(|e| e.under(&at))?;
                unknown_keys(item, &at, warnings);
                out.insert(name.clone(), named(&name, src));
            }
        }
        Value::Mapping(m) => {
            for (k, item) in m {
                let name = crate::issue::key_string(k);
                let src = entry(item).map_err(|e| e.under(&name))?;
                unknown_keys(item, &name, warnings);
                out.insert(name.clone(), named(&name, src));
            }
        }
        _ => return Err(Issue::new("", "must be a mapping, a list or a string")),
    }
    Ok(out)
}

fn unknown_keys(item: &Value, at: &str, warnings: &mut Vec<crate::issue::Issue>) {
    let Value::Mapping(m) = item else { return };
    for k in m.keys() {
        let k = crate::issue::key_string(k);
        if !ENTRY_KEYS.contains(&k.as_str()) {
            warnings.push(crate::issue::Issue::new(
                format!("{at}.{k}"),
                "unknown key, ignored (curtin ignores it too)",
            ));
        }
    }
}

fn named(name: &str, mut s: Source) -> Source {
    s.name = name.to_string();
    s
}

fn entry(v: &Value) -> Result<Source, crate::issue::Issue> {
    use crate::issue::Issue;
    match v {
        Value::String(s) => {
            check_prefix(s).map_err(|m| Issue::new("", m))?;
            Ok(parse(s))
        }
        Value::Mapping(_) => {
            let e: Entry = crate::issue::typed(v)?;
            if e.kind.is_none() {
                check_prefix(&e.uri).map_err(|m| Issue::new("uri", m))?;
            }
            let mut src = match &e.kind {
                // curtin trusts a typed entry as is: the uri keeps any prefix it has.
                Some(t) => Source {
                    kind: SourceType::from_name(t).ok_or_else(|| {
                        Issue::new(
                            "type",
                            format!(
                                "unknown source type '{t}' (one of: {})",
                                SourceType::ALL.map(|t| t.prefix()).join(", ")
                            ),
                        )
                    })?,
                    ..parse(&e.uri)
                },
                None => parse(&e.uri),
            };
            if e.kind.is_some() {
                src.uri = e.uri.clone();
            }
            src.sha256 = check_hex(e.sha256, 64, "sha256")?;
            src.sha512 = check_hex(e.sha512, 128, "sha512")?;
            src.size = e.size;
            src.mirrors = check_mirrors(&src.uri, e.mirrors)?;
            Ok(src)
        }
        _ => Err(Issue::new(
            "",
            "a source must be a string or a mapping {type, uri}",
        )),
    }
}

fn is_http(s: &str) -> bool {
    s.starts_with("http://") || s.starts_with("https://")
}

/// Mirrors are other URLs of an object served over HTTP: both ends must be http(s).
fn check_mirrors(uri: &str, mirrors: Vec<String>) -> Result<Vec<String>, crate::issue::Issue> {
    use crate::issue::Issue;
    if mirrors.is_empty() {
        return Ok(mirrors);
    }
    if !is_http(uri) {
        return Err(Issue::new(
            "mirrors",
            format!("mirrors need an http(s) uri, not '{uri}'"),
        ));
    }
    for (i, m) in mirrors.iter().enumerate() {
        if !is_http(m) {
            return Err(Issue::new(
                format!("mirrors[{i}]"),
                format!("must be an http:// or https:// URL, got '{m}'"),
            ));
        }
    }
    Ok(mirrors)
}

fn check_hex(
    v: Option<String>,
    len: usize,
    key: &str,
) -> Result<Option<String>, crate::issue::Issue> {
    debug_assert_eq!(Some(len), digest_len(key));
    v.map(|h| digest(key, &h).map_err(|m| crate::issue::Issue::new(key, m)))
        .transpose()
}

/// Hex digits in a `sha256` (64) or `sha512` (128) digest.
fn digest_len(key: &str) -> Option<usize> {
    match key {
        "sha256" => Some(64),
        "sha512" => Some(128),
        _ => None,
    }
}

/// Check a `sha256` or `sha512` digest as given in a config or on the command line (exactly
/// the right number of hex digits); returns it lower-cased, or the message naming the problem.
pub fn digest(key: &str, hex: &str) -> Result<String, String> {
    let len = digest_len(key).ok_or_else(|| format!("unknown digest {key}"))?;
    if hex.len() != len || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!("must be {len} hex digits, got '{hex}'"));
    }
    Ok(hex.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_prefix() {
        for t in SourceType::ALL {
            let s = parse(&format!("{}:http://h/x", t.prefix()));
            assert_eq!((s.kind, s.uri.as_str()), (t, "http://h/x"), "{t}");
        }
        assert_eq!(parse("squashfs://http://h/x").kind, SourceType::Fsimage);
        assert_eq!(parse("squashfs://http://h/x").uri, "http://h/x");
        assert_eq!(parse("http://h/root.squashfs").kind, SourceType::Fsimage);
        let s = parse("http://h/root-tgz");
        assert_eq!(
            (s.kind, s.uri.as_str()),
            (SourceType::Tgz, "http://h/root-tgz")
        );
        let s = parse("dd-img:http://h/x");
        assert_eq!(
            (s.kind, s.uri.as_str()),
            (SourceType::Tgz, "dd-img:http://h/x")
        );
        assert_eq!(parse("cp:///media/root-ro").kind, SourceType::Tgz);
        assert!(SourceType::DdZst.is_dd() && !SourceType::Tzst.is_dd());
    }

    #[test]
    fn mirrors_are_http_urls_of_an_http_source() {
        let v: Value = yaml_serde::from_str(
            "img: {type: dd-gz, uri: 'http://a/x.gz', mirrors: ['http://b/x.gz', 'https://c/x.gz']}",
        )
        .unwrap();
        let s = &from_value(&v, &mut vec![]).unwrap()["img"];
        assert_eq!(s.mirrors, ["http://b/x.gz", "https://c/x.gz"]);
        assert!(parse("http://a/x").mirrors.is_empty());
        for (cfg, path, msg) in [
            (
                "img: {uri: 'http://a/x.gz', mirrors: ['http://b/x', 'ftp://c/x']}",
                "img.mirrors[1]",
                "must be an http:// or https:// URL, got 'ftp://c/x'",
            ),
            (
                "img: {uri: '/srv/x.tgz', mirrors: ['http://b/x']}",
                "img.mirrors",
                "mirrors need an http(s) uri, not '/srv/x.tgz'",
            ),
        ] {
            let e = from_value(&yaml_serde::from_str(cfg).unwrap(), &mut vec![]).unwrap_err();
            assert_eq!((e.path_string().as_str(), e.message.as_str()), (path, msg));
        }
    }

    #[test]
    fn unknown_prefixes_are_named() {
        let e = check_prefix("ddraw:http://h/x").unwrap_err();
        assert!(e.contains("unknown source prefix 'ddraw:'"), "{e}");
        assert!(e.contains("dd-raw:") && e.contains("https://"), "{e}");
        for ok in [
            "dd-raw:http://h/x",
            "http://h/x",
            "HTTPS://h/x",
            "file:///x",
            "cp:///media/root-ro",
            "squashfs://http://h/x",
            "/srv/a:b.tgz",
            "root.tgz",
        ] {
            assert!(check_prefix(ok).is_ok(), "{ok}");
        }
        let v: Value = yaml_serde::from_str("{a: 'ddraw:/x', b: 'tgz:/y'}").unwrap();
        let i = from_value(&v, &mut vec![]).unwrap_err();
        assert_eq!(i.path_string(), "a");
        let v: Value = yaml_serde::from_str("{a: {uri: 'dd-gzip:/x'}}").unwrap();
        assert_eq!(
            from_value(&v, &mut vec![]).unwrap_err().path_string(),
            "a.uri"
        );
    }

    #[test]
    fn digests_need_exactly_their_hex_digits() {
        assert_eq!(digest("sha256", &"A".repeat(64)).unwrap(), "a".repeat(64));
        assert!(digest("sha256", &"a".repeat(63))
            .unwrap_err()
            .contains("64 hex digits"));
        assert!(digest("sha512", &"g".repeat(128))
            .unwrap_err()
            .contains("got 'ggg"));
        assert!(digest("sha512", &"0".repeat(128)).is_ok());
    }
}
