//! The cloud-config for the ephemeral OS (maas-preseed.md §6.4): MAAS's datasource, rsyslog and
//! reporting, then instead of curtin's self-extracting installer, `deployer install` on the
//! generated config. The reboot is guarded as MAAS guards it: `test ! -e /tmp/block-reboot`.

use yaml_serde::{Mapping, Value};

use super::machine::Machine;
use super::{reporting, seq, Generated};

/// Where the config and the run script live in the ephemeral OS (a tmpfs).
pub const CONFIG_PATH: &str = "/run/deployer/config.yaml";
pub const RUN_PATH: &str = "/run/deployer/run";

#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Fetch the config from this URL (OAuth1 PLAINTEXT with the machine's token) instead of
    /// embedding it.
    pub config_url: Option<String>,
    /// Download the deployer binary from here (and link `curtin` to it) before running it.
    pub deployer_url: Option<String>,
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// The rack's syslog endpoint: the metadata host on port 5247 unless given.
fn syslog(m: &Machine) -> String {
    if let Some(s) = &m.syslog {
        return s.clone();
    }
    let rest = m.metadata_url.split("://").nth(1).unwrap_or("");
    let hostport = rest.split('/').next().unwrap_or("");
    let host = match hostport.rsplit_once(':') {
        Some((h, p)) if p.chars().all(|c| c.is_ascii_digit()) => h,
        _ => hostport,
    };
    format!("{host}:5247")
}

/// The script runcmd runs: get the binary and the config, then install.
fn run_script(m: &Machine, opts: &Options) -> String {
    let mut s = String::from(
        "#!/bin/sh\n# Written by preseed user-data: install with deployer.\nset -eu\n",
    );
    if let Some(url) = &opts.deployer_url {
        s.push_str(&format!(
            "wget -q -O /usr/local/sbin/deployer {}\nchmod 0755 /usr/local/sbin/deployer\n\
             ln -sf deployer /usr/local/sbin/curtin\n",
            shell_quote(url)
        ));
    }
    if let Some(url) = &opts.config_url {
        // OAuth1 PLAINTEXT, as MAAS's own installer download does.
        s.push_str(&format!(
            "auth=\"OAuth oauth_version=\\\"1.0\\\", oauth_signature_method=\\\"PLAINTEXT\\\", \
             oauth_consumer_key=\\\"{ck}\\\", oauth_token=\\\"{tk}\\\", \
             oauth_signature=\\\"%26{ts}\\\", oauth_nonce=\\\"$(cat /proc/sys/kernel/random/uuid)\\\", \
             oauth_timestamp=\\\"$(date +%s)\\\"\"\n\
             wget -q --header \"Authorization: $auth\" -O {cfg} {url}\n",
            ck = m.token.consumer_key,
            tk = m.token.token_key,
            ts = m.token.token_secret,
            cfg = CONFIG_PATH,
            url = shell_quote(url),
        ));
    }
    s.push_str(&format!("exec deployer install -c {CONFIG_PATH}\n"));
    s
}

fn file(path: &str, perms: &str, content: String) -> Value {
    let mut f = Mapping::new();
    f.insert("path".into(), path.into());
    f.insert("permissions".into(), perms.into());
    f.insert("content".into(), content.into());
    Value::Mapping(f)
}

/// The whole `#cloud-config` text.
pub fn render(m: &Machine, g: &Generated, opts: &Options) -> String {
    let mut c = Mapping::new();
    c.insert("manage_etc_hosts".into(), true.into());
    let mut ds = Mapping::new();
    let mut maas = Mapping::new();
    maas.insert(
        "metadata_url".into(),
        format!("{}curtin", m.metadata_root()).into(),
    );
    maas.insert("consumer_key".into(), m.token.consumer_key.clone().into());
    maas.insert("token_key".into(), m.token.token_key.clone().into());
    maas.insert("token_secret".into(), m.token.token_secret.clone().into());
    ds.insert("MAAS".into(), Value::Mapping(maas));
    c.insert("datasource".into(), Value::Mapping(ds));
    let mut remotes = Mapping::new();
    remotes.insert("maas".into(), syslog(m).into());
    let mut rsyslog = Mapping::new();
    rsyslog.insert("remotes".into(), Value::Mapping(remotes));
    c.insert("rsyslog".into(), Value::Mapping(rsyslog));
    let mut rep = Mapping::new();
    rep.insert("maas".into(), Value::Mapping(reporting::webhook(m)));
    c.insert("reporting".into(), Value::Mapping(rep));

    let mut files = Vec::new();
    if opts.config_url.is_none() {
        files.push(file(CONFIG_PATH, "0600", g.archive_yaml()));
    }
    files.push(file(RUN_PATH, "0700", run_script(m, opts)));
    c.insert("write_files".into(), Value::Sequence(files));
    c.insert(
        "runcmd".into(),
        Value::Sequence(vec![seq(["sh".to_string(), RUN_PATH.to_string()])]),
    );
    let mut ps = Mapping::new();
    ps.insert("delay".into(), "now".into());
    ps.insert("mode".into(), "reboot".into());
    ps.insert("timeout".into(), 1800.into());
    ps.insert("condition".into(), "test ! -e /tmp/block-reboot".into());
    c.insert("power_state".into(), Value::Mapping(ps));
    format!(
        "#cloud-config\n{}",
        crate::yaml::to_string(&Value::Mapping(c)).expect("YAML of a Value")
    )
}
