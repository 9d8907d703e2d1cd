//! Network config for the deployed OS: the network stage (`net-meta`: the config as given to
//! `OUTPUT_NETWORK_CONFIG`), and applying it to the target in curthooks — passed through to
//! the target's cloud-init when it takes v2 (`50-curtin-networking.cfg`, as curtin does), else
//! rendered here to netplan or ENI with cloud-init told to leave it alone.

pub mod eni;
pub mod netplan;
pub mod state;

use std::fs;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use preseed::network::{Body, Network};
use yaml_serde::Value;

use crate::cli::NetworkFormat;
use crate::error::{Kind, KindExt};
use crate::target::{Chroot, TargetRoot};
use crate::workdir::{self, WorkingDir};

/// curtin's passthrough file, read by the target's cloud-init on first boot.
pub const PASSTHROUGH_PATH: &str = "etc/cloud/cloud.cfg.d/50-curtin-networking.cfg";
/// curtin's "cloud-init, leave networking alone" drop-in, written when we render ourselves.
pub const DISABLE_PATH: &str = "etc/cloud/cloud.cfg.d/curtin-disable-cloudinit-networking.cfg";
pub const DISABLE_CONTENT: &str = "network: {config: disabled}\n";

/// The YAML of `{network: <as given>}` (OUTPUT_NETWORK_CONFIG and the passthrough file).
pub fn passthrough_text(net: &Network) -> Result<String> {
    let mut m = yaml_serde::Mapping::new();
    m.insert(Value::String("network".into()), net.raw.clone());
    preseed::yaml::to_string(&Value::Mapping(m)).context("writing network YAML")
}

/// Render for a format. netplan/eni need v1 (v2 is already netplan: it is written as is).
pub fn render(net: &Network, format: NetworkFormat) -> Result<String> {
    match (format, &net.body) {
        (NetworkFormat::Passthrough, _) => passthrough_text(net),
        (_, Body::Disabled) => bail!("the network config is `config: disabled`: nothing to render"),
        (NetworkFormat::Netplan, Body::V2) => {
            Ok(format!("{}{}", netplan::HEADER, passthrough_text(net)?))
        }
        (NetworkFormat::Eni, Body::V2) => Err(anyhow!(
            "network config version 2 can only be passed through or written as netplan, not as ENI"
        ))
        .kind(Kind::Config),
        (NetworkFormat::Netplan, Body::V1(e)) => netplan::render(&state::State::from_entries(e)),
        (NetworkFormat::Eni, Body::V1(e)) => eni::render(&state::State::from_entries(e)),
    }
}

/// `deployer render-network -c FILE --format F`. The file may hold a whole config (with
/// `network:`) or a bare network document.
pub fn render_cmd(g: &crate::cli::Global, a: &crate::cli::RenderNetworkArgs) -> Result<()> {
    let l = workdir::stage_config(g)?;
    let net = match l.config.network {
        Some(n) => n,
        // A bare network document: not a curtin config, read as a whole.
        None if l.config.extra.contains_key("version") => Network::from_value(&l.merged)
            .map_err(|e| anyhow!(e))
            .kind(Kind::Config)?,
        None => return Err(anyhow!("the config has no `network:`")).kind(Kind::Config),
    };
    print!("{}", render(&net, a.format)?);
    Ok(())
}

/// `deployer net-meta [MODE]` (curtin's network stage).
pub fn net_meta(g: &crate::cli::Global, a: &crate::cli::NetMetaArgs) -> Result<()> {
    let cfg = workdir::stage_config(g)?;
    let target = a.target.target_mount.clone();
    let wd = workdir::for_stage(target.as_deref(), &cfg)?.for_subcommand("net-meta");
    let r = net_meta_in(&wd, &cfg.config, a.mode.as_deref());
    wd.finish();
    r
}

fn net_meta_in(wd: &WorkingDir, cfg: &preseed::Config, mode: Option<&str>) -> Result<()> {
    // An image's own network hook replaces the stage (reachable for dd images only).
    let root = TargetRoot::open(&wd.target).kind(Kind::Storage)?;
    const HOOK: &str = "curtin/network-config";
    if root.is_file(HOOK) {
        return crate::hook::run_target_hook(wd, &root.real_path(HOOK)?);
    }
    let mode = mode.unwrap_or("auto");
    match (mode, cfg.network.clone()) {
        ("disabled", _) => Ok(()),
        ("custom" | "auto", Some(net)) => {
            let text = passthrough_text(&net)?;
            fs::write(&wd.network_config, text)
                .with_context(|| format!("writing {}", wd.network_config.display()))
        }
        ("custom", None) => {
            Err(anyhow!("net-meta custom: the config has no `network:`")).kind(Kind::Config)
        }
        ("copy", _) | ("auto", None) if root.is_file(eni::PATH) => {
            tracing::warn!("copying the target's /etc/network/interfaces: this is brittle");
            fs::write(&wd.interfaces, root.read(eni::PATH)?)
                .with_context(|| format!("copying interfaces to {}", wd.interfaces.display()))?;
            Ok(())
        }
        ("copy", _) => bail!("net-meta copy: the target has no /etc/network/interfaces"),
        ("auto" | "dhcp", _) => {
            let text = passthrough_text(&dhcp_config()?)?;
            fs::write(&wd.network_config, text)
                .with_context(|| format!("writing {}", wd.network_config.display()))
        }
        (m, _) => Err(anyhow!(
            "net-meta: unknown mode {m:?} (auto, custom, copy, dhcp, disabled)"
        ))
        .kind(Kind::Config),
    }
}

/// DHCP on every connected physical interface of this machine (curtin's `dhcp` mode).
fn dhcp_config() -> Result<Network> {
    let mut entries = vec![];
    let mut names: Vec<_> = fs::read_dir("/sys/class/net")
        .context("listing /sys/class/net")?
        .filter_map(|e| e.ok())
        .collect();
    names.sort_by_key(|e| e.file_name());
    for e in names {
        let p = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        // Physical: has a device link; connected: operstate up or unknown.
        if !p.join("device").exists() {
            continue;
        }
        let state = fs::read_to_string(p.join("operstate")).unwrap_or_default();
        if !matches!(state.trim(), "up" | "unknown") {
            continue;
        }
        let mac = fs::read_to_string(p.join("address")).unwrap_or_default();
        entries.push(preseed::yaml::from_str(&format!(
            "{{type: physical, name: {name}, mac_address: '{}', subnets: [{{type: dhcp4}}]}}",
            mac.trim()
        ))?);
    }
    let mut m = yaml_serde::Mapping::new();
    m.insert("version".into(), 1.into());
    m.insert("config".into(), Value::Sequence(entries));
    Network::from_value(&Value::Mapping(m)).map_err(|e| anyhow!(e))
}

/// What [`apply`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    Nothing,
    Passthrough,
    Netplan,
    Eni,
    CopiedInterfaces,
}

/// Does the target's cloud-init take v2 / passthrough? `cloud-init features` in the target
/// (NETWORK_CONFIG_V2), else its package version (the features command and the flag came
/// with 18.4 together... a version at least that new passes).
pub fn passthrough_available(chroot: &Chroot) -> bool {
    let root = chroot.root();
    let has = crate::image_check::has_tool(
        &crate::image_check::MountedRoot(root),
        &crate::image_check::CLOUD_INIT,
    );
    if !has {
        return false;
    }
    match chroot.output(&["cloud-init", "features"]) {
        Ok(out) => out.lines().any(|l| l.trim() == "NETWORK_CONFIG_V2"),
        Err(e) => {
            tracing::debug!("cloud-init features in the target: {e:#}");
            cloud_init_version(root).is_some_and(|v| v >= (18, 4))
        }
    }
}

/// The installed cloud-init's version (major, minor) from the dpkg status file.
pub fn cloud_init_version(root: &Path) -> Option<(u32, u32)> {
    let v = crate::image_check::dpkg_version(&crate::image_check::MountedRoot(root), "cloud-init")?;
    crate::image_check::major_minor(&v)
}

fn write_in(root: &TargetRoot, rel: &str, content: &str, mode: u32) -> Result<()> {
    root.write_file(rel, content.as_bytes(), mode, None)
}

/// curthooks' network step (curtin's `apply_networking`), on a target entered for commands.
pub fn apply(chroot: &Chroot, wd: &WorkingDir) -> Result<Applied> {
    apply_with(chroot, wd, false)
}

/// [`apply`]; `for_cloud_init`: always hand the config to the target's cloud-init (RHEL
/// family: it renders sysconfig itself; netplan and ENI are not what those systems read).
pub fn apply_with(chroot: &Chroot, wd: &WorkingDir, for_cloud_init: bool) -> Result<Applied> {
    let root = chroot.files();
    let text = fs::read_to_string(&wd.network_config).unwrap_or_default();
    if text.lines().count() <= 1 {
        if wd.interfaces.is_file() {
            root.copy_from_host(&wd.interfaces, eni::PATH, 0o644)?;
            return Ok(Applied::CopiedInterfaces);
        }
        tracing::warn!("no network config and no interfaces file to copy");
        return Ok(Applied::Nothing);
    }
    let v: Value = preseed::yaml::from_str(&text)
        .with_context(|| format!("parsing {}", wd.network_config.display()))
        .kind(Kind::Config)?;
    let net = Network::from_value(&v)
        .map_err(|e| anyhow!(e))
        .kind(Kind::Config)?;
    if net.body == Body::Disabled {
        return Ok(Applied::Nothing);
    }
    let applied = if for_cloud_init || passthrough_available(chroot) {
        write_in(root, PASSTHROUGH_PATH, &passthrough_text(&net)?, 0o644)?;
        Applied::Passthrough
    } else {
        let has_netplan = crate::image_check::has_tool(
            &crate::image_check::MountedRoot(chroot.root()),
            &crate::image_check::NETPLAN,
        );
        match (&net.body, has_netplan) {
            (Body::V1(_), false) => {
                let Body::V1(e) = &net.body else {
                    unreachable!()
                };
                let st = state::State::from_entries(e);
                write_in(root, eni::PATH, &eni::render(&st)?, 0o644)?;
                write_in(root, eni::UDEV_RULES, &eni::udev_rules(&st), 0o644)?;
                write_in(root, DISABLE_PATH, DISABLE_CONTENT, 0o644)?;
                Applied::Eni
            }
            (_, true) => {
                write_in(
                    root,
                    netplan::PATH,
                    &render(&net, NetworkFormat::Netplan)?,
                    0o600,
                )?;
                write_in(root, DISABLE_PATH, DISABLE_CONTENT, 0o644)?;
                Applied::Netplan
            }
            (_, false) => {
                // v2 with neither: the best we can do is leave it for whatever cloud-init is there.
                tracing::warn!("the target has neither netplan nor a cloud-init that takes version 2; writing {PASSTHROUGH_PATH} anyway");
                write_in(root, PASSTHROUGH_PATH, &passthrough_text(&net)?, 0o644)?;
                Applied::Passthrough
            }
        }
    };
    cleanup_legacy(root);
    Ok(applied)
}

/// A config file's lines without blanks and comments, trimmed.
fn meaningful_lines(text: &str) -> Vec<&str> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect()
}

/// curtin's after-steps: drop Ubuntu's legacy eth0 DHCP stanza and the IPv6 privacy default.
fn cleanup_legacy(root: &TargetRoot) {
    let eth0 = "etc/network/interfaces.d/eth0.cfg";
    if let Some(t) = root.read_to_string_opt(eth0) {
        if meaningful_lines(&t) == ["auto eth0", "iface eth0 inet dhcp"] {
            let _ = root.remove_file(eth0);
        }
    }
    let privacy = "etc/sysctl.d/10-ipv6-privacy.conf";
    if let Some(t) = root.read_to_string_opt(privacy) {
        if meaningful_lines(&t)
            == [
                "net.ipv6.conf.all.use_tempaddr = 2",
                "net.ipv6.conf.default.use_tempaddr = 2",
            ]
        {
            let commented: String = t
                .lines()
                .map(|l| {
                    if l.trim().starts_with("net.") {
                        format!("# {l}\n")
                    } else {
                        format!("{l}\n")
                    }
                })
                .collect();
            let _ = root.write_file(privacy, commented.as_bytes(), 0o644, None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cloud_init_version_from_dpkg_status() {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir_all(d.path().join("var/lib/dpkg")).unwrap();
        fs::write(
            d.path().join("var/lib/dpkg/status"),
            "Package: bash\nVersion: 5.2\n\nPackage: cloud-init\nStatus: install ok installed\nVersion: 22.4.2-1+deb12u1\n",
        )
        .unwrap();
        assert_eq!(cloud_init_version(d.path()), Some((22, 4)));
        fs::write(
            d.path().join("var/lib/dpkg/status"),
            "Package: cloud-init\nVersion: 1:18.3-0ubuntu1\n",
        )
        .unwrap();
        assert_eq!(cloud_init_version(d.path()), Some((18, 3)));
    }
}
