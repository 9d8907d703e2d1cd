//! Single builtin steps, run alone on a mounted target (`curtin curthooks --step NAME`). This
//! is how deployer's curtin Python package ([`crate::curtin_py`]) reaches the one
//! implementation of each step when a packer-maas hook calls `builtin_curthooks`,
//! `apply_networking`, `copy_fstab` or `update_initramfs`. Step names are curtin's event names.

use std::path::Path;

use anyhow::{anyhow, Context, Result};
use preseed::Config;

use crate::error::{Kind, KindExt};
use crate::target::{is_executable_in, Chroot};
use crate::workdir::WorkingDir;

/// The steps, by name.
pub const STEPS: [&str; 6] = [
    "builtin",
    "setting-up-swap",
    "apply-networking-config",
    "writing-etc-fstab",
    "update-initramfs",
    "configuring-bootloader",
];

pub fn run(wd: &WorkingDir, cfg: &Config, step: &str) -> Result<()> {
    let target = &wd.target;
    if !target.is_dir() {
        return Err(anyhow!("target {} is not a directory", target.display())).kind(Kind::Storage);
    }
    tracing::info!("curthooks step {step} on {}", target.display());
    match step {
        // The hook asked for the builtin hooks: never the image's hook again.
        "builtin" => super::builtin(wd, cfg),
        "writing-etc-fstab" => super::copy_fstab(wd, target),
        // Into the state fstab, as curtin's add_swap: the hook copies it to etc/fstab next.
        "setting-up-swap" => super::swap::step(wd, cfg.swap.as_ref()),
        "apply-networking-config" => in_chroot(target, |c| {
            let applied = crate::network::apply_with(c, wd, super::is_redhat(target))?;
            tracing::info!("network: {applied:?}");
            Ok(())
        }),
        "update-initramfs" => in_chroot(target, update_initramfs_all),
        "configuring-bootloader" if super::is_redhat(target) => {
            in_chroot(target, |c| super::redhat::setup_grub(c, cfg))
        }
        "configuring-bootloader" => in_chroot(target, |c| super::bootloader::setup(c, cfg)),
        other => Err(anyhow!(
            "unknown curthooks step {other:?} (one of: {})",
            STEPS.join(", ")
        ))
        .kind(Kind::Config),
    }
    .with_context(|| format!("curthooks step {step}"))
}

fn in_chroot(target: &Path, f: impl FnOnce(&Chroot) -> Result<()>) -> Result<()> {
    let chroot = Chroot::enter(target)?;
    let r = f(&chroot);
    let left = chroot.leave();
    r.and(left)
}

/// curtin's `update_initramfs(all_kernels=True)`: for each `/boot/vmlinu?-VERSION`,
/// `update-initramfs -u -k VERSION` when its initrd exists, `-c` when not. A target with
/// dracut instead is left alone; one with kernels and neither tool is an error.
pub fn update_initramfs_all(chroot: &Chroot) -> Result<()> {
    let root = chroot.root();
    let kernels = kernel_versions(&root.join("boot"));
    let has = |t: &str| {
        ["usr/sbin", "sbin", "usr/bin", "bin"]
            .iter()
            .any(|d| is_executable_in(root, &format!("{d}/{t}")))
    };
    if has("update-initramfs") {
        for v in &kernels {
            let mode = if root.join(format!("boot/initrd.img-{v}")).exists() {
                "-u"
            } else {
                "-c"
            };
            tracing::info!("running `update-initramfs {mode} -k {v}` in the target");
            chroot
                .output(&["update-initramfs", mode, "-k", v])
                .with_context(|| format!("update-initramfs {mode} -k {v}"))?;
        }
        Ok(())
    } else if has("dracut") || kernels.is_empty() {
        Ok(())
    } else {
        Err(anyhow!(
            "cannot update the initramfs: neither update-initramfs nor dracut is in the target"
        ))
        .kind(Kind::Image)
    }
}

/// The versions of `boot/vmlinu?-*`, newest name first.
pub fn kernel_versions(boot: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(boot)
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .filter_map(|n| {
                    let rest = n.strip_prefix("vmlinu")?;
                    let (_, ver) = rest.split_once('-')?;
                    (rest.len() > 1 && !ver.is_empty()).then(|| ver.to_string())
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v.reverse();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernels_in_boot() {
        let d = tempfile::tempdir().unwrap();
        for f in [
            "vmlinuz-6.1.0-1-amd64",
            "vmlinux-5.4.0-9",
            "initrd.img-6.1.0-1-amd64",
            "config-6.1.0-1-amd64",
            "vmlinuz",
        ] {
            std::fs::write(d.path().join(f), "").unwrap();
        }
        assert_eq!(kernel_versions(d.path()), ["6.1.0-1-amd64", "5.4.0-9"]);
    }
}
