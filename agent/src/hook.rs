//! The hook stage (`curtin hook`: the image's `/curtin/finalize`), and running any of the
//! image's `/curtin/*` hooks the way curtin does: executed directly from the ephemeral OS (no
//! chroot, no arguments; the shebang resolves on the host), with curtin's environment, output
//! merged into the install log, a non-zero exit failing the stage with the output in the error.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use anyhow::{anyhow, Context, Result};

use crate::commands::{self, Cmd, RunOpts};
use crate::error::{Kind, KindExt};
use crate::target::TargetRoot;
use crate::workdir::{self, WorkingDir};

/// `deployer hook`: run `<target>/curtin/finalize` if it is a file.
pub fn run(g: &crate::cli::Global, a: &crate::cli::TargetArgs) -> Result<()> {
    let cfg = workdir::stage_config(g)?;
    let wd = workdir::for_stage(a.target_mount.as_deref(), &cfg)?.for_subcommand("hook");
    // Resolved inside the target: a `/curtin` linked elsewhere cannot make us run a host file.
    let root = TargetRoot::open(&wd.target).kind(Kind::Storage)?;
    const FINALIZE: &str = "curtin/finalize";
    let r = if root.is_file(FINALIZE) {
        root.exec_path(FINALIZE)
            .and_then(|finalize| run_target_hook(&wd, &finalize))
    } else {
        Ok(())
    };
    wd.finish();
    r
}

/// Run one of the image's hooks with the working dir's environment.
pub fn run_target_hook(wd: &WorkingDir, hook: &Path) -> Result<()> {
    let md = std::fs::metadata(hook)
        .with_context(|| format!("reading {}", hook.display()))
        .kind(Kind::Hook)?;
    if md.permissions().mode() & 0o111 == 0 {
        return Err(anyhow!(
            "the image's hook {} is not executable (mode {:o}): curtin runs it directly",
            hook.display(),
            md.permissions().mode() & 0o7777
        ))
        .kind(Kind::Hook);
    }
    let mut env = wd.env();
    if let Some(v) = efivarfs_workaround() {
        env.push(("LIBEFIVAR_OPS".into(), v.into()));
    }
    // Our output is the install log when run as a stage command (the parent tees it).
    let opts = RunOpts {
        env,
        ..Default::default()
    };
    let cmd = Cmd::Exec(vec![hook.to_string_lossy().into_owned()]);
    commands::run_one(&cmd, &opts)
        .with_context(|| format!("the image's hook {} failed", hook.display()))
}

/// LP#2040190: statvfs on efivars failing with EINVAL means libefivar must use efivarfs.
fn efivarfs_workaround() -> Option<&'static str> {
    let p = Path::new("/sys/firmware/efi/efivars");
    if !p.is_dir() {
        return None;
    }
    match nix::sys::statvfs::statvfs(p) {
        Err(nix::errno::Errno::EINVAL) => Some("efivarfs"),
        _ => None,
    }
}
