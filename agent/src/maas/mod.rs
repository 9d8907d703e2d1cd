//! A deployment from MAAS's metadata service: what MAAS's own installer does in its ephemeral
//! OS, without running any of its shell.
//!
//! `deployer install` with no `-c`, no `$CONFIG` and no `deployer.config=`, booted with
//! MAAS's `cloud-config-url=` on the kernel command line:
//! 1. the preseed at `cloud-config-url` (anonymous); a preseed that is not a deployment's
//!    (commissioning, testing, rescue, enlistment: every other boot of the same ephemeral OS)
//!    ends here with one line and exit 0, no disk touched, no install events;
//! 2. the installer, OAuth-signed, from MAAS 3.8's endpoint or MAAS ≤3.7's user-data
//!    ([`metadata`]); 404 on both: nothing to deploy, one line, exit 0;
//! 3. its header and MD5SUM checked, its payload extracted at `/curtin` (as curtin's archive
//!    extracts itself there; `$DEPLOYER_MAAS_DIR` elsewhere), its `curtin/` package the hooks'
//!    first choice ([`crate::workdir`]);
//! 4. the install with exactly `COMMAND`'s `--config=` files, in order, and its source.
//!
//! A broken installer (MD5SUM, truncated payload, no `COMMAND`) fails with the reason and a
//! `cmd-install` FAIL event to the preseed's `reporting` (MAAS marks the deployment failed).

pub mod installer;
pub mod metadata;

use std::path::PathBuf;

use anyhow::{Context, Result};

use crate::cli::{Global, InstallArgs};
use crate::error::{Kind, KindExt};
use crate::fetch_config;

/// Where the archive is extracted (its `PREFIX` dir in the ephemeral root's `/`).
pub fn extract_dir() -> PathBuf {
    std::env::var_os("DEPLOYER_MAAS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/curtin"))
}

/// Set for the install when the installer carried a `curtin` Python package: the dir to put on
/// the hooks' PYTHONPATH (read by [`crate::workdir`]).
pub const INSTALLER_PYTHONPATH_ENV: &str = "DEPLOYER_INSTALLER_PYTHONPATH";

/// How `deployer install` starts.
#[derive(Debug)]
pub enum Start {
    /// Not a MAAS boot (or a config was given): the install as asked.
    AsAsked,
    /// MAAS has nothing for this node to deploy: say so, exit 0.
    Nothing(String),
    /// MAAS's installer: install with these; `power_state` is the preseed's (cloud-init
    /// applies it after the installer in MAAS's own flow).
    Deploy {
        global: Global,
        args: InstallArgs,
        power_state: Option<Box<preseed::install::PowerState>>,
    },
}

/// A MAAS boot is one with `cloud-config-url=` and no other way to the config.
fn maas_boot(g: &Global) -> Option<String> {
    if !g.config.is_empty() || !g.set.is_empty() {
        return None;
    }
    if std::env::var_os("CONFIG").is_some_and(|c| !c.is_empty()) {
        return None;
    }
    let c = fetch_config::parse_cmdline(&fetch_config::kernel_cmdline());
    if !c.configs.is_empty() {
        return None;
    }
    c.cloud_config_url
}

/// Decide how the install starts; for a MAAS deployment, fetch and unpack the installer.
pub fn start(g: &Global, a: &InstallArgs) -> Result<Start> {
    let Some(url) = maas_boot(g) else {
        return Ok(Start::AsAsked);
    };
    let preseed = metadata::fetch_preseed(&url).kind(Kind::Config)?;
    save_kernel_cmdline_cfg(&preseed);
    if !preseed.is_deployment() {
        return Ok(Start::Nothing(format!(
            "deployer: MAAS's preseed for this boot is not a deployment (metadata_url {}): nothing to install",
            preseed.metadata_url.as_deref().unwrap_or("unset")
        )));
    }
    match installer_start(g, a, &preseed) {
        Ok(s) => Ok(s),
        Err(e) => {
            report_failure(&preseed, &e);
            Err(e)
        }
    }
}

/// What cloud-init leaves in a MAAS ephemeral OS and MAAS's own scripts and preseeds read
/// (50-curtin-install's credentials, the Debian preseed's late_commands): the kernel command
/// line's cloud-config, in `/etc/cloud/cloud.cfg.d/91_kernel_cmdline_url.cfg`
/// (`$DEPLOYER_MAAS_KERNEL_CMDLINE_CFG` elsewhere). Written only where cloud-init has not.
fn save_kernel_cmdline_cfg(p: &metadata::Preseed) {
    let path = std::env::var_os("DEPLOYER_MAAS_KERNEL_CMDLINE_CFG")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/etc/cloud/cloud.cfg.d/91_kernel_cmdline_url.cfg"));
    if path.exists() {
        return;
    }
    let r = (|| -> Result<()> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        if let Some(d) = path.parent() {
            std::fs::create_dir_all(d)?;
        }
        let text = preseed::yaml::to_string(&p.value)?;
        // It holds the node's OAuth credentials.
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)?;
        f.write_all(format!("#cloud-config\n{text}").as_bytes())?;
        Ok(())
    })();
    if let Err(e) = r {
        tracing::warn!("writing {}: {e:#}", path.display());
    }
}

fn installer_start(g: &Global, a: &InstallArgs, p: &metadata::Preseed) -> Result<Start> {
    let Some((url, text)) = metadata::fetch_installer(p).kind(Kind::Source)? else {
        return Ok(Start::Nothing(
            "deployer: MAAS has no curtin installer for this node (404): nothing to install".into(),
        ));
    };
    if !installer::is_archive(&text) {
        return Ok(Start::Nothing(format!(
            "deployer: the user-data at {url} is not a curtin installer: nothing to install"
        )));
    }
    tracing::info!("curtin installer from {url} ({} bytes)", text.len());
    let inst = installer::Installer::parse(&text)
        .with_context(|| format!("the curtin installer from {url}"))
        .kind(Kind::Source)?;
    let cmd = inst
        .command()
        .with_context(|| format!("the curtin installer from {url}"))
        .kind(Kind::Source)?;
    let dir = extract_dir();
    if dir.exists() {
        // The archive's own extractor refuses an existing dir; a previous run left this one.
        std::fs::remove_dir_all(&dir)
            .with_context(|| format!("removing the old {}", dir.display()))
            .kind(Kind::Source)?;
    }
    inst.extract(&dir).kind(Kind::Source)?;
    if dir.join("curtin/__init__.py").is_file() {
        std::env::set_var(INSTALLER_PYTHONPATH_ENV, &dir);
    } else {
        // Where curtin's archive would have put its package (centos6's hooks set
        // PYTHONPATH=/curtin): deployer's own goes there instead.
        std::env::remove_var(INSTALLER_PYTHONPATH_ENV);
        crate::curtin_py::unpack(&dir).kind(Kind::Source)?;
    }
    let configs: Vec<String> = cmd
        .configs
        .iter()
        .map(|c| dir.join(c).display().to_string())
        .collect();
    tracing::info!(
        "installing with {} configs from the installer and the source(s) {:?}",
        configs.len(),
        cmd.sources
    );
    let mut global = g.clone();
    global.config = configs;
    global.set = cmd.sets.clone();
    let mut sources = cmd.sources.clone();
    sources.extend(a.sources.iter().cloned());
    Ok(Start::Deploy {
        global,
        args: InstallArgs {
            target: a.target.clone(),
            size: a.size.clone(),
            sources,
        },
        power_state: p.power_state.clone().map(Box::new),
    })
}

/// cloud-init's `power_state.condition`: absent or true, or a shell command that exits 0
/// (MAAS sends `test ! -e /tmp/block-reboot`).
pub fn power_condition_holds(ps: &preseed::install::PowerState) -> bool {
    match &ps.condition {
        None | Some(yaml_serde::Value::Bool(true)) => true,
        Some(yaml_serde::Value::String(cmd)) => std::process::Command::new("sh")
            .args(["-c", cmd])
            .stdin(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success()),
        Some(_) => false,
    }
}

/// The installer could not be used: `cmd-install` start and FAIL to the preseed's reporting
/// (the configs that would carry it are in the installer), so MAAS sees the failure.
fn report_failure(p: &metadata::Preseed, e: &anyhow::Error) {
    crate::install::report_refusal(&p.reporting, e);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn power_conditions() {
        let v = |s: &str| -> preseed::install::PowerState {
            preseed::config::typed(&yaml_serde::from_str(s).unwrap()).unwrap()
        };
        assert!(power_condition_holds(&v("{mode: reboot}")));
        assert!(power_condition_holds(&v(
            "{mode: reboot, condition: 'test -d /'}"
        )));
        assert!(!power_condition_holds(&v(
            "{mode: reboot, condition: 'test -e /nonexistent/x'}"
        )));
        assert!(!power_condition_holds(&v(
            "{mode: reboot, condition: false}"
        )));
    }
}
