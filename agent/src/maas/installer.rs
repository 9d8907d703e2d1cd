//! curtin's installer archive (`curtin pack`: a self-extracting bash script), read without
//! running any of its shell: the variables its header sets (`MD5SUM`, `COMMAND`, `PREFIX`,
//! `PAYLOAD_MARKER`, each printed by `print_vars` in bash single quotes), then after the marker
//! line the base64 of a tar.gz holding `curtin/`, `bin/`, `helpers/` and
//! `configs/config-NNN.cfg`.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use base64::Engine;
use md5::{Digest, Md5};

/// The default marker (`helpers/shell-archive`); the archive's own `PAYLOAD_MARKER` wins.
const DEFAULT_MARKER: &str = "_____PAYLOAD_____";

/// A parsed installer archive.
#[derive(Debug)]
pub struct Installer {
    /// The header's variables; arrays (`COMMAND`) as their words, scalars as one word.
    vars: HashMap<String, Vec<String>>,
    /// The payload (a tar.gz), decoded and checked against `MD5SUM`.
    payload: Vec<u8>,
}

/// What `COMMAND` asks curtin to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// `--config=` / `-c` paths, in order, relative to the extracted archive.
    pub configs: Vec<String>,
    /// `--set` arguments, in order.
    pub sets: Vec<String>,
    /// The positional sources after `install`.
    pub sources: Vec<String>,
}

/// Whether `text` looks like a curtin pack archive at all (a shell script with a payload
/// marker), as opposed to other user-data.
pub fn is_archive(text: &str) -> bool {
    text.starts_with("#!") && text.lines().any(|l| l.starts_with("PAYLOAD_MARKER="))
}

impl Installer {
    /// Read the header, decode the payload and check its MD5SUM. Fails naming what is wrong:
    /// no marker, a payload that is not base64, a checksum mismatch (a truncated or altered
    /// archive).
    pub fn parse(text: &str) -> Result<Installer> {
        let mut vars = HashMap::new();
        let mut lines = text.split_inclusive('\n');
        let mut marker = DEFAULT_MARKER.to_string();
        let mut found_marker = false;
        for line in lines.by_ref() {
            let l = line.trim_end_matches(['\n', '\r']);
            if l == marker {
                found_marker = true;
                break;
            }
            if let Some((name, value)) = assignment(l) {
                if name == "PAYLOAD_MARKER" {
                    if let Some(m) = value.first() {
                        marker = m.clone();
                    }
                }
                vars.entry(name).or_insert(value);
            }
        }
        if !found_marker {
            bail!("the installer archive has no payload marker line ({marker}): not a complete curtin installer");
        }
        let b64: String = lines
            .flat_map(|l| l.chars())
            .filter(|c| !c.is_ascii_whitespace())
            .collect();
        let payload = base64::engine::general_purpose::STANDARD
            .decode(b64.as_bytes())
            .context("the installer archive's payload is not valid base64: truncated or corrupted in transit")?;
        let inst = Installer { vars, payload };
        inst.check_md5()?;
        Ok(inst)
    }

    fn var(&self, name: &str) -> Option<&[String]> {
        self.vars.get(name).map(|v| v.as_slice())
    }

    fn check_md5(&self) -> Result<()> {
        let want = self
            .var("MD5SUM")
            .and_then(|v| v.first())
            .map(|s| s.to_ascii_lowercase())
            .ok_or_else(|| anyhow!("the installer archive has no MD5SUM line"))?;
        let got = hex::encode(Md5::digest(&self.payload));
        if got != want {
            bail!(
                "the installer archive's payload does not match its MD5SUM (expected {want}, got {got}, {} bytes): truncated or corrupted in transit",
                self.payload.len()
            );
        }
        Ok(())
    }

    /// `PREFIX`: the dir the archive extracts into (`curtin`).
    pub fn prefix(&self) -> &str {
        self.var("PREFIX")
            .and_then(|v| v.first())
            .map(String::as_str)
            .unwrap_or("curtin")
    }

    /// The install `COMMAND`: its `--config` list and sources. An archive without one (or
    /// whose command is not `curtin ... install ...`) is refused.
    pub fn command(&self) -> Result<Command> {
        let argv = self.var("COMMAND").unwrap_or(&[]);
        if argv.iter().all(|a| a.is_empty()) {
            bail!("the installer archive has no COMMAND: it names no install to run");
        }
        let Some(install) = argv.iter().position(|a| a == "install") else {
            bail!(
                "the installer archive's COMMAND is not a curtin install: {:?}",
                argv
            );
        };
        let mut cmd = Command {
            configs: vec![],
            sets: vec![],
            sources: vec![],
        };
        let mut it = argv.iter().enumerate().skip(1);
        while let Some((i, a)) = it.next() {
            let mut value = |flag: &str| -> Option<String> {
                if let Some(v) = a.strip_prefix(&format!("{flag}=")) {
                    return Some(v.to_string());
                }
                (a == flag)
                    .then(|| it.next().map(|(_, v)| v.clone()))
                    .flatten()
            };
            if let Some(v) = value("--config").or_else(|| value("-c")) {
                cmd.configs.push(v);
            } else if let Some(v) = value("--set") {
                cmd.sets.push(v);
            } else if i > install && !a.starts_with('-') {
                cmd.sources.push(a.clone());
            }
        }
        Ok(cmd)
    }

    /// Extract the payload into `dir` (created; what the archive's `extract` mode does).
    pub fn extract(&self, dir: &Path) -> Result<PathBuf> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let gz = flate2::read::GzDecoder::new(self.payload.as_slice());
        let mut ar = tar::Archive::new(gz);
        ar.set_preserve_permissions(true);
        ar.unpack(dir)
            .with_context(|| format!("extracting the installer payload into {}", dir.display()))?;
        Ok(dir.to_path_buf())
    }

    /// One member of the payload (e.g. `./configs/config-000.cfg`) without extracting.
    pub fn member(&self, name: &str) -> Result<Option<Vec<u8>>> {
        let want = name.trim_start_matches("./");
        let gz = flate2::read::GzDecoder::new(self.payload.as_slice());
        let mut ar = tar::Archive::new(gz);
        for e in ar.entries().context("reading the installer payload")? {
            let mut e = e.context("reading the installer payload")?;
            let path = e.path()?.to_string_lossy().into_owned();
            if path.trim_start_matches("./") == want {
                let mut buf = vec![];
                e.read_to_end(&mut buf)?;
                return Ok(Some(buf));
            }
        }
        Ok(None)
    }
}

/// `NAME=value` as `print_vars` writes it: `'word'` or `( 'w1' 'w2' )`, single quotes with
/// `'\''` for a quote inside.
fn assignment(line: &str) -> Option<(String, Vec<String>)> {
    let (name, rest) = line.split_once('=')?;
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c == '_' || c.is_ascii_uppercase());
    if !first_ok || !chars.all(|c| c == '_' || c.is_ascii_uppercase() || c.is_ascii_digit()) {
        return None;
    }
    let rest = rest.trim();
    let words = match rest.strip_prefix('(') {
        Some(inner) => shell_words(inner.strip_suffix(')')?)?,
        None => {
            let w = shell_words(rest)?;
            if w.len() > 1 {
                return None;
            }
            w
        }
    };
    Some((name.to_string(), words))
}

/// Split bash words made of single-quoted strings, backslash escapes and plain characters.
fn shell_words(s: &str) -> Option<Vec<String>> {
    let mut words = vec![];
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next()? {
                        '\'' => break,
                        ch => cur.push(ch),
                    }
                }
            }
            '\\' => {
                in_word = true;
                cur.push(chars.next()?);
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            '"' | '$' | '`' | ';' | '|' | '&' | '<' | '>' | '(' | ')' => return None,
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    Some(words)
}

/// Build an archive in curtin pack's format (for tests and fixtures): `files` (path, bytes)
/// in a tar.gz, `command` as `COMMAND`.
pub fn pack(files: &[(&str, &[u8])], command: &[&str]) -> Result<String> {
    let mut gz = flate2::write::GzEncoder::new(vec![], flate2::Compression::default());
    {
        let mut tb = tar::Builder::new(&mut gz);
        for (path, bytes) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(bytes.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            tb.append_data(&mut h, format!("./{path}"), *bytes)?;
        }
        tb.finish()?;
    }
    let payload = gz.finish()?;
    let quote = |s: &str| format!("'{}'", s.replace('\'', "'\\''"));
    let cmd = if command.len() == 1 {
        quote(command[0])
    } else {
        let words: Vec<String> = command.iter().map(|w| quote(w)).collect();
        format!("( {} )", words.join(" "))
    };
    let b64 = base64::engine::general_purpose::STANDARD.encode(&payload);
    let mut body = String::new();
    for chunk in b64.as_bytes().chunks(76) {
        body.push_str(std::str::from_utf8(chunk).expect("base64 is ascii"));
        body.push('\n');
    }
    Ok(format!(
        "#!/bin/bash\n# vi: ts=4 expandtab syntax=sh\nMD5SUM='{}'\nPREFIX='curtin'\nLABEL='curtin'\nCOMMAND={cmd}\nPYPATH='_pwd_'\nBINPATH='_pwd_/bin'\nCREATE_TIME='Thu, 01 Jan 2026 00:00:00 +0000'\nPAYLOAD_MARKER='{DEFAULT_MARKER}'\nVERBOSITY=0\nmain() {{ :; }}\nmain \"$@\"\nexit\n{DEFAULT_MARKER}\n{body}",
        hex::encode(Md5::digest(&payload))
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> String {
        pack(
            &[
                ("configs/config-000.cfg", b"a: 1\n"),
                ("configs/config-001.cfg", b"b: 2\n"),
                ("curtin/__init__.py", b"# theirs\n"),
            ],
            &[
                "curtin",
                "--install-deps",
                "install",
                "--config=configs/config-000.cfg",
                "--config=configs/config-001.cfg",
                "dd-gz:http://h/it's.gz",
            ],
        )
        .unwrap()
    }

    #[test]
    fn header_command_and_payload() {
        let inst = Installer::parse(&sample()).unwrap();
        assert!(is_archive(&sample()));
        let c = inst.command().unwrap();
        assert_eq!(
            c.configs,
            ["configs/config-000.cfg", "configs/config-001.cfg"]
        );
        assert_eq!(c.sources, ["dd-gz:http://h/it's.gz"]);
        assert_eq!(inst.prefix(), "curtin");
        assert_eq!(
            inst.member("configs/config-001.cfg").unwrap().unwrap(),
            b"b: 2\n"
        );
        let d = tempfile::tempdir().unwrap();
        inst.extract(d.path()).unwrap();
        assert!(d.path().join("curtin/__init__.py").is_file());
    }

    #[test]
    fn damage_is_named() {
        let s = sample();
        let cut = &s[..s.len() - 40];
        let e = Installer::parse(cut).unwrap_err();
        assert!(format!("{e:#}").contains("truncated"), "{e:#}");
        let e = Installer::parse(&s.replace("_____PAYLOAD_____\n", "")).unwrap_err();
        assert!(format!("{e:#}").contains("payload marker"), "{e:#}");
        let bad = s.replace(
            &s[s.find("MD5SUM='").unwrap()..s.find("MD5SUM='").unwrap() + 40],
            "MD5SUM='00000000000000000000000000000000",
        );
        assert!(format!("{:#}", Installer::parse(&bad).unwrap_err()).contains("MD5SUM"));
        let none = pack(&[("x", b"")], &[""]).unwrap();
        let e = Installer::parse(&none).unwrap().command().unwrap_err();
        assert!(e.to_string().contains("no COMMAND"), "{e}");
        assert!(!is_archive("#!/bin/sh\necho hi\n"));
    }

    #[test]
    fn shell_quoting() {
        assert_eq!(
            shell_words("'a'\\''b' 'c d' e").unwrap(),
            ["a'b", "c d", "e"]
        );
        assert!(shell_words("\"$(rm -rf /)\"").is_none());
        assert_eq!(
            assignment("COMMAND=( 'x' 'y' )").unwrap().1,
            ["x".to_string(), "y".to_string()]
        );
        assert!(assignment("  main() {").is_none());
    }
}
