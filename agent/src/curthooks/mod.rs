//! The curthooks stage (`curtin curthooks`): the image's `/curtin/curtin-hooks` when it has
//! one (unless `curthooks: {mode: builtin}`), else the builtin hooks for Debian-family
//! targets: cloudconfig, network, fstab, bootloader and initramfs.

pub mod bootloader;
mod redhat;
pub mod steps;
pub mod storage;
pub mod swap;

use std::fs;
use std::path::Path;

use anyhow::{anyhow, Context, Result};
use preseed::install::CurthooksMode;
use preseed::Config;

use crate::error::{Kind, KindExt};
use crate::image_check;
use crate::target::{Chroot, TargetRoot};
use crate::workdir::{self, WorkingDir};

/// curtin's distro fstab header (written above the state fstab's lines).
pub const FSTAB_HEADER: &str = "\
# /etc/fstab: static file system information.
#
# Use 'blkid' to print the universally unique identifier for a
# device; this may be used with UUID= as a more robust way to name devices
# that works even if disks are added and removed. See fstab(5).
#
# <file system> <mount point>   <type>  <options>       <dump>  <pass>
";

/// `deployer curthooks` (`--step NAME`: one builtin step, see [`steps`]).
pub fn run(g: &crate::cli::Global, a: &crate::cli::CurthooksArgs) -> Result<()> {
    let l = workdir::stage_config(g)?;
    let wd = workdir::for_stage(a.target.target_mount.as_deref(), &l)?.for_subcommand("curthooks");
    let r = match &a.step {
        Some(step) => steps::run(&wd, &l.config, step),
        None => run_stage(&wd, &l.config),
    };
    wd.finish();
    r
}

/// The curthooks stage on a mounted target: the image's hook unless `curthooks.mode` is
/// builtin, then the image check unless `deployer: {image_check: false}`.
pub fn run_stage(wd: &WorkingDir, cfg: &Config) -> Result<()> {
    let target = &wd.target;
    if !target.is_dir() {
        return Err(anyhow!("target {} is not a directory", target.display())).kind(Kind::Storage);
    }
    let check = cfg.deployer.image_check;
    let builtin_only = cfg.curthooks.mode == CurthooksMode::Builtin;
    let root = TargetRoot::open(target).kind(Kind::Storage)?;
    if let Some(rel) = ubuntu_core_data(&root) {
        // Resolved inside the target first: a linked `system-data` cannot lead out of it.
        let base = root.real_path(rel).kind(Kind::Storage)?;
        return ubuntu_core(cfg, &base);
    }
    const HOOK: &str = "curtin/curtin-hooks";
    if !builtin_only && root.is_file(HOOK) {
        let hook = root.exec_path(HOOK)?;
        tracing::info!("running the image's {}", hook.display());
        crate::hook::run_target_hook(wd, &hook)?;
        // After the hook, as MAAS checks in its late commands: a hook may install cloud-init
        // (packer-maas's xenserver8 does).
        if check {
            image_check::check_target(target, false)?;
        }
        return Ok(());
    }
    if check {
        image_check::check_target(target, false)?;
    }
    builtin(wd, cfg)
}

/// Ubuntu Core (a snapd tree instead of a root): where its writable data lives —
/// `system-data` (UC16/18) or `data` (UC20+).
fn ubuntu_core_data(root: &TargetRoot) -> Option<&'static str> {
    let core = root.is_dir("system-data/var/lib/snapd") || root.is_dir("snaps");
    if !core {
        return None;
    }
    Some(if root.is_dir("system-data") {
        "system-data"
    } else {
        "data"
    })
}

/// curtin's `ubuntu_core_curthooks`: only cloudconfig and the network (passed through);
/// neither image hooks nor builtin hooks run.
fn ubuntu_core(cfg: &Config, base: &Path) -> Result<()> {
    write_cloudconfig(base, cfg).context("cloudconfig (Ubuntu Core)")?;
    if let Some(net) = &cfg.network {
        TargetRoot::open(base)?.write_file(
            crate::network::PASSTHROUGH_PATH,
            crate::network::passthrough_text(net)?.as_bytes(),
            0o644,
            None,
        )?;
    }
    Ok(())
}

/// The target's os-release ID and ID_LIKE words.
fn distro(target: &Path) -> Vec<String> {
    let view = image_check::MountedRoot(target);
    let text = image_check::RootView::read(&view, "etc/os-release")
        .or_else(|| image_check::RootView::read(&view, "usr/lib/os-release"))
        .unwrap_or_default();
    let mut ids = vec![];
    for key in ["ID", "ID_LIKE"] {
        if let Some(v) = image_check::os_release_field(&text, key) {
            ids.extend(v.split_whitespace().map(str::to_string));
        }
    }
    ids
}

/// Is the target of the RHEL family (its steps differ: see [`redhat`])?
pub fn is_redhat(target: &Path) -> bool {
    redhat::is_redhat(&distro(target))
}

/// The builtin hooks (the Debian family here; the RHEL family in [`redhat`]).
pub fn builtin(wd: &WorkingDir, cfg: &Config) -> Result<()> {
    use crate::report::within;
    let target = &wd.target;
    let ids = distro(target);
    if ids.is_empty() {
        return Err(anyhow!(
            "failed to determine the target's distro: no ID in {}/etc/os-release",
            target.display()
        ))
        .kind(Kind::Image);
    }
    let redhat = redhat::is_redhat(&ids);
    if !redhat && !ids.iter().any(|i| i == "debian" || i == "ubuntu") {
        return Err(anyhow!(
            "the builtin curthooks support the Debian and RHEL families; this target is {:?}: ship a /curtin/curtin-hooks in the image",
            ids.join(" ")
        ))
        .kind(Kind::Image);
    }
    let chroot = Chroot::enter(target)?;
    if redhat {
        let r = redhat::builtin(wd, cfg, &chroot);
        let left = chroot.leave();
        return r.and(left);
    }
    let r = (|| -> Result<()> {
        // Sub-events with curtin's names and descriptions (curthooks.builtin_curthooks).
        within("installing-kernel", "installing kernel", || {
            check_kernel(target, cfg);
            Ok(())
        })?;
        within("setting-up-swap", "setting up swap", || {
            swap::step(wd, cfg.swap.as_ref())
        })
        .context("setting-up-swap")?;
        write_cloudconfig(target, cfg).context("cloudconfig")?;
        let applied = within("apply-networking-config", "apply networking config", || {
            crate::network::apply(&chroot, wd)
        })
        .context("apply-networking-config")?;
        tracing::info!("network: {applied:?}");
        within("writing-etc-fstab", "writing etc/fstab", || {
            copy_fstab(wd, target)
        })
        .context("writing-etc-fstab")?;
        storage::install(wd, cfg, target, "etc/mdadm/mdadm.conf").context("configuring-storage")?;
        // block-meta's by-dname rules (curtin's copy_dname_rules).
        crate::block_meta::dname::copy_into(&wd.scratch.join("rules.d"), target)
            .context("copying the by-dname udev rules")?;
        within(
            "configuring-bootloader",
            "configuring target system bootloader",
            || bootloader::setup(&chroot, cfg),
        )
        .context("configuring-bootloader")?;
        Ok(())
    })();
    let left = chroot.leave();
    r.and(left)
}

/// curtin's `install_kernel`, without installing: deployer installs no packages, so it says
/// which kernel the image brings, and warns when it brings none.
pub fn check_kernel(target: &Path, cfg: &Config) {
    if cfg.kernel.as_ref().and_then(|k| k.install) == Some(false) {
        tracing::info!("kernel.install is false: the kernel is left as the image has it");
        return;
    }
    match steps::kernel_versions(&target.join("boot")).first() {
        Some(v) => tracing::info!("the image's kernel: {v}"),
        None => {
            let pkg = cfg.kernel.as_ref().and_then(|k| k.package.as_deref());
            tracing::warn!(
                "the target has no kernel in /boot, and deployer installs no packages{}: the image must bring its kernel",
                pkg.map(|p| format!(" (kernel.package {p})")).unwrap_or_default()
            );
        }
    }
}

/// `cloudconfig: {<key>: {content}}` -> `etc/cloud/cloud.cfg.d/95-cloudconfig-<key>.cfg`; a
/// `path` is ignored, as curtin ignores it (with a warning).
pub fn write_cloudconfig(target: &Path, cfg: &Config) -> Result<()> {
    // The config model has warned about a `path`, and sorted the entries by name.
    for (key, item) in &cfg.cloudconfig {
        let wf = preseed::install::WriteFile {
            path: format!("etc/cloud/cloud.cfg.d/95-cloudconfig-{key}.cfg"),
            // These carry the datasource's OAuth credentials: readable by root only.
            permissions: 0o600,
            ..item.clone()
        };
        crate::commands::write_file(target, &wf).with_context(|| format!("cloudconfig.{key}"))?;
    }
    Ok(())
}

/// `state/fstab` -> `etc/fstab` with the distro header (when block-meta wrote any lines: a dd
/// image's own fstab is kept).
pub fn copy_fstab(wd: &WorkingDir, target: &Path) -> Result<()> {
    let lines = fs::read_to_string(&wd.fstab).unwrap_or_default();
    if lines.trim().is_empty() {
        tracing::info!("no fstab lines from partitioning: keeping the image's /etc/fstab");
        return Ok(());
    }
    TargetRoot::open(target)?.write_file(
        crate::block_meta::fstab::PATH,
        format!("{FSTAB_HEADER}\n{lines}").as_bytes(),
        0o644,
        None,
    )
}
