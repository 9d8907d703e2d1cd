//! `dm_crypt` items (curtin `dm_crypt_handler`): LUKS with `cryptsetup luksFormat` and
//! `open`, or plain dm-crypt with a random key (`keyfile: /dev/urandom`). Each volume adds a
//! `<dm_name> UUID=<luks uuid> <keyfile|none> <options>` line to `state/crypttab`, which
//! curthooks installs as the target's `etc/crypttab`.
//!
//! The key: `key` (written to a 0600 temporary file, removed after), `keyfile: PATH` (a file on
//! the machine running the install; crypttab says `none`: the deployed system asks), or
//! `keyfile: {path, content}` (deployer's extension: the key is in the config, and curthooks
//! installs it at `path` in the target, which crypttab names, so the volume opens at boot).

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::config::{DmCrypt, Keyfile};
use super::custom::Ctx;
use crate::tools::{self, cryptsetup};

pub fn describe(c: &DmCrypt) -> String {
    let key = match (&c.key, &c.keyfile) {
        (Some(_), _) => "the config's key".to_string(),
        (_, Some(k)) if k.is_random() => "a random key (plain dm-crypt, no LUKS header)".into(),
        (_, Some(Keyfile::Path(p))) => format!("keyfile {p}"),
        (_, Some(Keyfile::Given { path, .. })) => {
            format!("the config's keyfile, installed at {path} for crypttab")
        }
        (None, None) => "no key".into(),
    };
    let what = if c.preserve {
        "preserve: verify the open mapping uses it, format nothing"
    } else {
        "luksFormat and open"
    };
    format!(
        "dm_crypt {}: /dev/mapper/{} on {}, {key}; {what}; a line in etc/crypttab",
        c.id,
        c.mapping_name(),
        c.volume
    )
}

/// The key on disk for cryptsetup: a temporary file (removed on drop) or the config's path.
enum KeyFile {
    Temp(tempfile::NamedTempFile),
    Path(PathBuf),
}

impl KeyFile {
    fn path(&self) -> &Path {
        match self {
            KeyFile::Temp(t) => t.path(),
            KeyFile::Path(p) => p,
        }
    }
}

fn secret_file(content: &str) -> Result<KeyFile> {
    // tempfile creates it 0600.
    let mut t = tempfile::Builder::new()
        .prefix("deployer-key-")
        .tempfile()
        .context("creating a key file")?;
    t.write_all(content.as_bytes())?;
    t.flush()?;
    Ok(KeyFile::Temp(t))
}

/// The crypttab third field for this volume.
pub fn crypttab_keyfile(c: &DmCrypt) -> String {
    match &c.keyfile {
        Some(Keyfile::Path(p)) if c.keyfile.as_ref().is_some_and(Keyfile::is_random) => p.clone(),
        Some(Keyfile::Given { path, .. }) => path.clone(),
        _ => "none".into(),
    }
}

/// Format and open (or verify) the volume; returns `/dev/mapper/<dm_name>`.
pub fn apply(ctx: &mut Ctx, c: &DmCrypt) -> Result<PathBuf> {
    let volume = ctx.dev(&c.volume)?.clone();
    let name = c.mapping_name();
    let plain = c.keyfile.as_ref().is_some_and(Keyfile::is_random);
    let key = match (&c.key, &c.keyfile) {
        (Some(k), _) => secret_file(k)?,
        (_, Some(Keyfile::Given { content, .. })) => secret_file(content)?,
        (_, Some(Keyfile::Path(p))) => KeyFile::Path(PathBuf::from(p)),
        (None, None) => bail!(
            "dm_crypt '{}': encryption key or keyfile must be specified",
            c.id
        ),
    };
    let mapped = PathBuf::from("/dev/mapper").join(name);
    if c.preserve {
        let dev = cryptsetup::status_device(name)
            .with_context(|| format!("dm_crypt '{}' (preserve: true): {name} is not open", c.id))?
            .unwrap_or_default();
        let canon = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
        if canon(Path::new(&dev)) != canon(&volume) {
            bail!(
                "dm_crypt '{}' (preserve: true): {name} is open on {dev}, not {}",
                c.id,
                volume.display()
            );
        }
    } else {
        if !plain {
            cryptsetup::luks_format(
                &volume,
                key.path(),
                c.cipher.as_deref(),
                c.keysize.as_deref(),
            )?;
            if let Some(r) = &c.recovery_keyfile {
                cryptsetup::add_key(&volume, key.path(), Path::new(r))?;
            }
        }
        cryptsetup::open(&volume, name, key.path(), plain)?;
    }
    // curtin's get_volume_id: UUID, else PARTUUID, else PTUUID of the encrypted volume.
    let (k, v) = tools::volume_id(&volume)?.with_context(|| {
        format!(
            "dm_crypt '{}': {} has no UUID, PARTUUID or PTUUID for crypttab",
            c.id,
            volume.display()
        )
    })?;
    let options = if c.options.is_empty() {
        "luks".to_string()
    } else {
        c.options.join(",")
    };
    ctx.crypttab
        .push(format!("{name} {k}={v} {} {options}", crypttab_keyfile(c)));
    if mapped.exists() {
        return Ok(mapped);
    }
    match ctx.sys.dm_by_name(name) {
        Some(k) => Ok(PathBuf::from("/dev").join(k)),
        None => bail!("dm_crypt '{}': no device for {}", c.id, mapped.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crypt(keyfile: Option<Keyfile>) -> DmCrypt {
        DmCrypt {
            id: "c".into(),
            volume: "p".into(),
            dm_name: None,
            key: None,
            keyfile,
            keysize: None,
            cipher: None,
            options: vec![],
            recovery_keyfile: None,
            preserve: false,
            wipe: None,
        }
    }

    #[test]
    fn crypttab_key_field() {
        assert_eq!(crypttab_keyfile(&crypt(None)), "none");
        assert_eq!(
            crypttab_keyfile(&crypt(Some(Keyfile::Path("/root/k".into())))),
            "none"
        );
        assert_eq!(
            crypttab_keyfile(&crypt(Some(Keyfile::Path("/dev/urandom".into())))),
            "/dev/urandom"
        );
        assert_eq!(
            crypttab_keyfile(&crypt(Some(Keyfile::Given {
                path: "/etc/keys/k".into(),
                content: "x".into()
            }))),
            "/etc/keys/k"
        );
        let d = describe(&crypt(Some(Keyfile::Given {
            path: "/etc/keys/k".into(),
            content: "x".into(),
        })));
        assert!(
            d.contains("/dev/mapper/c on p") && d.contains("installed at /etc/keys/k"),
            "{d}"
        );
    }

    #[test]
    fn key_files_are_private_and_removed() {
        use std::os::unix::fs::PermissionsExt;
        let k = secret_file("s3cret").unwrap();
        let p = k.path().to_path_buf();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "s3cret");
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        drop(k);
        assert!(!p.exists());
    }
}
