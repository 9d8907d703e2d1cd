//! The end of an install: the error tarball on failure, the install log copied into the
//! target, the target unmounted, the power state applied.

use std::path::{Path, PathBuf};

use anyhow::Context;
use preseed::install::{PowerMode, PowerState};
use yaml_serde::Value;

/// `install.error_tarfile`: a tar of `curtin-logs-<date>/` with what a person debugging the
/// failure needs: version, the merged config (credentials redacted), the kernel command line,
/// partitions, os-release, kernel version and the install logs.
pub fn error_tarfile(path: &Path, cfg: &Value, logs: &[PathBuf]) -> anyhow::Result<()> {
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    let f = std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut tar = tar::Builder::new(f);
    let dir = format!("curtin-logs-{}", stamp());
    let mut add = |name: &str, data: &[u8]| -> anyhow::Result<()> {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o600);
        h.set_mtime(unix_now());
        h.set_cksum();
        tar.append_data(&mut h, format!("{dir}/{name}"), data)
            .with_context(|| format!("adding {name} to {}", path.display()))
    };
    add(
        "version",
        format!("deployer {}\n", env!("CARGO_PKG_VERSION")).as_bytes(),
    )?;
    let cfg_json = serde_json::to_vec_pretty(&redact(cfg))?;
    add("curtin-config", &cfg_json)?;
    for (name, src) in [
        ("os-release", "/etc/os-release"),
        ("cmdline", "/proc/cmdline"),
        ("partitions", "/proc/partitions"),
    ] {
        if let Ok(b) = std::fs::read(src) {
            add(name, &b)?;
        }
    }
    if let Ok(u) = nix::sys::utsname::uname() {
        let line = format!(
            "{} {} {} {} {}\n",
            u.sysname().to_string_lossy(),
            u.nodename().to_string_lossy(),
            u.release().to_string_lossy(),
            u.version().to_string_lossy(),
            u.machine().to_string_lossy()
        );
        add("uname", line.as_bytes())?;
    }
    for l in logs {
        if l == path {
            continue;
        }
        // Capped as the posted log is: the tarball is posted too (MAAS's post_files).
        if let Ok(b) = crate::report::cap::read_capped_for_tarball(l) {
            let base = l
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            add(&base, &b)?;
        }
    }
    tar.into_inner()?.sync_all().ok();
    Ok(())
}

/// The config with every credential replaced, wherever its value appears (curtin leaves
/// MAAS's reporting secrets in, and the saved install config repeats them in a string).
pub fn redact(cfg: &Value) -> Value {
    let mut secrets = Vec::new();
    collect_secrets(cfg, &mut secrets);
    secrets.retain(|s| s.len() >= 4);
    replace_secrets(cfg, &secrets)
}

const SECRET_KEYS: [&str; 4] = [
    "consumer_key",
    "consumer_secret",
    "token_key",
    "token_secret",
];

fn collect_secrets(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Mapping(m) => {
            for (k, v) in m {
                if k.as_str().is_some_and(|k| SECRET_KEYS.contains(&k)) {
                    if let Some(s) = v.as_str() {
                        out.push(s.to_string());
                    }
                }
                collect_secrets(v, out);
            }
        }
        Value::Sequence(s) => s.iter().for_each(|v| collect_secrets(v, out)),
        _ => {}
    }
}

fn replace_secrets(v: &Value, secrets: &[String]) -> Value {
    match v {
        Value::Mapping(m) => Value::Mapping(
            m.iter()
                .map(|(k, v)| {
                    let secret = k.as_str().is_some_and(|k| SECRET_KEYS.contains(&k));
                    let v = if secret {
                        Value::from("REDACTED")
                    } else {
                        replace_secrets(v, secrets)
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        Value::Sequence(s) => {
            Value::Sequence(s.iter().map(|v| replace_secrets(v, secrets)).collect())
        }
        Value::String(s) => {
            let mut s = s.clone();
            for sec in secrets {
                s = s.replace(sec.as_str(), "REDACTED");
            }
            Value::String(s)
        }
        v => v.clone(),
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `YYYY-mm-dd-HH-MM` in UTC, as curtin names the tarball's directory.
fn stamp() -> String {
    let secs = unix_now();
    let days = (secs / 86400) as i64;
    let (h, mi) = ((secs / 3600) % 24, (secs / 60) % 60);
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}-{h:02}-{mi:02}")
}

/// Copy the install log into the target (`install.save_install_log`, mode 0400), when the
/// target holds an installed system; the path is resolved inside the target.
pub fn save_log_in_target(target: &Path, rel: &str, log: &Path) {
    let r = (|| -> anyhow::Result<()> {
        let root = crate::target::TargetRoot::open(target)?;
        if root.is_dir("etc") {
            root.copy_from_host(log, rel, 0o400)?;
        }
        Ok(())
    })();
    if let Err(e) = r {
        tracing::warn!("copying the install log into the target: {e:#}");
    }
}

/// Every mount at or under `dir`, in mount order.
pub fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    crate::mounts::under(dir)
}

/// Unmount the target and everything under it, innermost (latest) first, as curtin's
/// `do_umount(recursive=True)`. A busy mount is detached lazily, with a warning.
pub fn unmount_all(dir: &Path) -> anyhow::Result<()> {
    for m in mounts_under(dir).into_iter().rev() {
        if let Err(e) = nix::mount::umount(&m) {
            tracing::warn!("unmounting {}: {e}; detaching it lazily", m.display());
            nix::mount::umount2(&m, nix::mount::MntFlags::MNT_DETACH)
                .with_context(|| format!("unmounting {}", m.display()))?;
        }
    }
    Ok(())
}

/// `power_state: {mode: reboot|poweroff|halt, delay, message}`: curtin's forked
/// `shutdown`, skipped when /run/block-curtin-poweroff exists.
pub fn apply_power_state(ps: Option<&PowerState>) -> anyhow::Result<()> {
    let Some(ps) = ps else {
        return Ok(());
    };
    let flag = match ps.mode {
        PowerMode::Halt => "-H",
        PowerMode::Poweroff => "-P",
        PowerMode::Reboot => "-r",
    };
    let delay = match ps.delay.as_deref() {
        None => "5".to_string(),
        Some("now") => "0".to_string(),
        Some(s) => match s.strip_prefix('+') {
            Some(m) => format!("{m}m"),
            None => s.to_string(),
        },
    };
    let mut args = vec![
        "-c".to_string(),
        "sleep \"$1\" && shift; [ -f /run/block-curtin-poweroff ] && exit 0; exec \"$@\"".into(),
        "curtin-poweroff".into(),
        delay,
        "shutdown".into(),
        flag.into(),
        "now".into(),
    ];
    if let Some(m) = &ps.message {
        args.push(m.clone());
    }
    std::process::Command::new("sh")
        .args(&args)
        .stdin(std::process::Stdio::null())
        .spawn()
        .context("starting the power-state command")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_credentials_everywhere() {
        let v: Value = yaml_serde::from_str(
            "reporting: {maas: {type: webhook, consumer_key: a, token_key: b, token_secret: c}}",
        )
        .unwrap();
        let r = redact(&v);
        assert_eq!(
            r["reporting"]["maas"]["token_secret"],
            Value::from("REDACTED")
        );
        assert_eq!(r["reporting"]["maas"]["type"], Value::from("webhook"));
    }

    #[test]
    fn stamp_is_minutes() {
        let s = stamp();
        assert_eq!(s.len(), 16, "{s}");
    }

    #[test]
    fn bad_power_state_is_named() {
        // Refused when the config is read, before any stage.
        let v: Value = yaml_serde::from_str("power_state: {mode: explode}").unwrap();
        let e = preseed::load::from_merged(v).unwrap_err().to_string();
        assert!(
            e.contains("power_state.mode") && e.contains("explode"),
            "{e}"
        );
        assert!(apply_power_state(None).is_ok());
    }
}
