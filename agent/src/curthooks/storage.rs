//! The storage files of the builtin curthooks (curtin's `configure_mdadm`,
//! `curthook_crypttab`): what block-meta left in the state directory becomes the target's
//! `etc/mdadm/mdadm.conf` and `etc/crypttab`, and the key files the config carries
//! (`dm_crypt` `keyfile: {path, content}`) are installed where that crypttab names them. The
//! initramfs rebuilt afterwards (the bootloader step) then knows the arrays, volume groups and
//! encrypted volumes the system boots from.

use std::path::Path;

use anyhow::{Context, Result};
use preseed::storage::{Item, Keyfile};
use preseed::Config;

use crate::block_meta::{STATE_CRYPTTAB, STATE_MDADM_CONF};
use crate::workdir::WorkingDir;

/// Copy `state/mdadm.conf` and `state/crypttab` into the target, and install given key files.
/// `mdadm_conf`: where the target's distro keeps it (`etc/mdadm/mdadm.conf` on Debian,
/// `etc/mdadm.conf` on RHEL).
pub fn install(wd: &WorkingDir, cfg: &Config, target: &Path, mdadm_conf_path: &str) -> Result<()> {
    let state = wd.state_dir();
    for (name, dest) in [
        (STATE_MDADM_CONF, mdadm_conf_path),
        (STATE_CRYPTTAB, "etc/crypttab"),
    ] {
        let src = state.join(name);
        let Ok(mut body) = std::fs::read_to_string(&src) else {
            continue;
        };
        if name == STATE_MDADM_CONF {
            let image = crate::target::TargetRoot::open(target)?
                .read_to_string_opt(dest)
                .unwrap_or_default();
            body = mdadm_conf(&image, &body);
        }
        tracing::info!("installing {} as /{dest}", src.display());
        // write_bytes resolves `dest` inside the target (TargetRoot).
        crate::commands::write_bytes(target, dest, body.as_bytes(), 0o644, None)
            .with_context(|| format!("writing /{dest}"))?;
    }
    for (path, content) in given_keyfiles(cfg) {
        // Readable by root only: it opens the volume.
        // write_bytes resolves `dest` inside the target (TargetRoot).
        crate::commands::write_bytes(target, &path, content.as_bytes(), 0o400, Some("root:root"))
            .with_context(|| format!("installing the key file {path}"))?;
    }
    Ok(())
}

/// The image's mdadm.conf without its ARRAY entries (an ARRAY line and the indented lines that
/// continue it), then block-meta's ARRAY lines: its MAILADDR, HOMEHOST and DEVICE settings
/// stay, so the array monitor has somewhere to report. curtin replaces the whole file.
fn mdadm_conf(image: &str, arrays: &str) -> String {
    let mut out = String::new();
    let mut in_array = false;
    for l in image.lines() {
        let continued = l.starts_with(|c: char| c.is_whitespace()) && !l.trim().is_empty();
        if l.starts_with("ARRAY") || (in_array && continued) {
            in_array = true;
            continue;
        }
        in_array = false;
        out.push_str(l);
        out.push('\n');
    }
    if !out.is_empty() && !out.ends_with("\n\n") {
        out.push('\n');
    }
    out.push_str("# arrays made by deployer (mdadm --detail --scan)\n");
    out.push_str(arrays);
    out
}

/// `(path, content)` of every dm_crypt `keyfile: {path, content}` in the storage config.
fn given_keyfiles(cfg: &Config) -> Vec<(String, String)> {
    let items = cfg.storage.iter().flat_map(|s| &s.config);
    items
        .filter_map(|i| match i {
            Item::DmCrypt(c) => match &c.keyfile {
                Some(Keyfile::Given { path, content }) => Some((path.clone(), content.clone())),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mdadm_conf_keeps_the_images_settings() {
        let image = "# mdadm.conf\nHOMEHOST <system>\nMAILADDR root\nARRAY /dev/md/old metadata=1.2\n   UUID=a:b:c:d\nDEVICE partitions\n";
        let got = mdadm_conf(image, "ARRAY /dev/md0 metadata=1.2 UUID=1:2:3:4\n");
        assert_eq!(
            got,
            "# mdadm.conf\nHOMEHOST <system>\nMAILADDR root\nDEVICE partitions\n\n# arrays made by deployer (mdadm --detail --scan)\nARRAY /dev/md0 metadata=1.2 UUID=1:2:3:4\n"
        );
        assert!(mdadm_conf("", "ARRAY x\n").ends_with("ARRAY x\n"));
    }

    #[test]
    fn key_files_from_the_config() {
        let cfg = preseed::load::from_merged(
            yaml_serde::from_str(
                "storage:\n  version: 1\n  config:\n    - {id: d, type: disk, path: /dev/vda}\n    - {id: p, type: partition, device: d, size: 1G}\n    - {id: q, type: partition, device: d, size: 1G}\n    - {id: r, type: partition, device: d, size: 1G}\n    - {id: a, type: dm_crypt, volume: p, key: x}\n    - {id: b, type: dm_crypt, volume: q, keyfile: /root/k}\n    - {id: c, type: dm_crypt, volume: r, keyfile: {path: /etc/keys/c.key, content: s3cret}}\n",
            )
            .unwrap(),
        )
        .unwrap()
        .config;
        assert_eq!(
            given_keyfiles(&cfg),
            [("/etc/keys/c.key".to_string(), "s3cret".to_string())]
        );
    }
}
