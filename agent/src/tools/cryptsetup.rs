//! `cryptsetup`: LUKS volumes and plain dm-crypt mappings.

use std::ffi::OsString;
use std::path::Path;

use anyhow::{Context, Result};

use super::run;

/// `cryptsetup [--cipher C] [--key-size N] --batch-mode luksFormat VOLUME KEYFILE`
/// (`--batch-mode`: no confirmation question; curtin relies on having no terminal).
pub fn luks_format_args(
    volume: &Path,
    keyfile: &Path,
    cipher: Option<&str>,
    keysize: Option<&str>,
) -> Vec<OsString> {
    let mut a: Vec<OsString> = Vec::new();
    if let Some(c) = cipher {
        a.extend(["--cipher".into(), c.into()]);
    }
    if let Some(k) = keysize {
        a.extend(["--key-size".into(), k.into()]);
    }
    a.extend([
        "--batch-mode".into(),
        "luksFormat".into(),
        volume.into(),
        keyfile.into(),
    ]);
    a
}

pub fn luks_format(
    volume: &Path,
    keyfile: &Path,
    cipher: Option<&str>,
    keysize: Option<&str>,
) -> Result<()> {
    run(
        "cryptsetup",
        &luks_format_args(volume, keyfile, cipher, keysize),
    )
    .with_context(|| format!("luksFormat {}", volume.display()))?;
    Ok(())
}

/// `cryptsetup open --type luks|plain VOLUME NAME --key-file KEYFILE`.
pub fn open_args(volume: &Path, name: &str, keyfile: &Path, plain: bool) -> Vec<OsString> {
    vec![
        "open".into(),
        "--type".into(),
        if plain { "plain" } else { "luks" }.into(),
        volume.into(),
        name.into(),
        "--key-file".into(),
        keyfile.into(),
    ]
}

pub fn open(volume: &Path, name: &str, keyfile: &Path, plain: bool) -> Result<()> {
    run("cryptsetup", &open_args(volume, name, keyfile, plain))
        .with_context(|| format!("opening {} as {name}", volume.display()))?;
    Ok(())
}

/// `cryptsetup luksAddKey --key-file KEYFILE VOLUME NEWKEYFILE`.
pub fn add_key(volume: &Path, keyfile: &Path, new_keyfile: &Path) -> Result<()> {
    run(
        "cryptsetup",
        &[
            "luksAddKey".into(),
            "--key-file".into(),
            keyfile.into(),
            volume.into(),
            new_keyfile.into(),
        ],
    )?;
    Ok(())
}

/// `cryptsetup close NAME`.
pub fn close(name: &str) -> Result<()> {
    run("cryptsetup", &["close".into(), name.into()])?;
    Ok(())
}

/// The backing device of an open mapping (`cryptsetup status NAME`: `device:  /dev/vdb2`).
pub fn status_device(name: &str) -> Result<Option<String>> {
    let out = run("cryptsetup", &["status".into(), name.into()])?;
    Ok(parse_status_device(&out))
}

pub fn parse_status_device(text: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.trim().strip_prefix("device:"))
        .map(|d| d.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tools::tests::words;

    #[test]
    fn command_lines() {
        assert_eq!(
            words(luks_format_args(
                Path::new("/dev/vdc1"),
                Path::new("/tmp/k"),
                Some("aes-xts-plain64"),
                Some("512")
            )),
            [
                "--cipher",
                "aes-xts-plain64",
                "--key-size",
                "512",
                "--batch-mode",
                "luksFormat",
                "/dev/vdc1",
                "/tmp/k"
            ]
        );
        assert_eq!(
            words(open_args(
                Path::new("/dev/vdc1"),
                "secret",
                Path::new("/tmp/k"),
                false
            )),
            [
                "open",
                "--type",
                "luks",
                "/dev/vdc1",
                "secret",
                "--key-file",
                "/tmp/k"
            ]
        );
        assert_eq!(
            words(open_args(
                Path::new("/dev/x"),
                "s",
                Path::new("/dev/urandom"),
                true
            ))[2],
            "plain"
        );
        assert_eq!(
            parse_status_device(
                "/dev/mapper/s is active.\n  type:    LUKS2\n  device:  /dev/vdc1\n"
            ),
            Some("/dev/vdc1".into())
        );
    }
}
