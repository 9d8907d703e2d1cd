//! What MAAS's `curtin_userdata*` templates and `get_curtin_config` add
//! (maas-preseed.md §1.3.8-1.3.9, §7): debconf selections and the late commands, including the
//! custom-image dependency checks with MAAS's exact keys and messages.

use yaml_serde::{Mapping, Value};

use super::machine::Machine;
use super::resource::Checked;
use super::seq;

/// The tools each base OS must carry, in check order (`DEPS_PER_OS`).
fn deps_for(base_os: &str) -> &'static [(&'static str, &'static str)] {
    match base_os {
        "ubuntu" => &[
            ("cloud-init", "cloud-init --version"),
            ("netplan", "netplan info"),
        ],
        _ => &[("cloud-init", "cloud-init --version")],
    }
}

/// `late_commands` entries checking a custom image for its tools:
/// `98-validate-custom-image-has-cloud-init`, `99-validate-custom-image-has-netplan`.
pub fn validation_commands(base_os: &str) -> Vec<(String, Value)> {
    deps_for(base_os)
        .iter()
        .enumerate()
        .map(|(i, (tool, cmd))| {
            let key = format!("{}-validate-custom-image-has-{tool}", 98 + i);
            let script = format!(
                "{cmd} || (echo \"{tool} not detected, MAAS will not be able to configure this machine properly\" && exit 1)"
            );
            let argv = ["curtin", "in-target", "--", "bash", "-c", &script].map(String::from);
            (key, seq(argv))
        })
        .collect()
}

/// Debconf lines for cloud-init in the target, for `cloud-init` and `cloud-init-base`.
fn debconf_maas(m: &Machine) -> String {
    let creds = format!(
        "oauth_consumer_key={}&oauth_token_key={}&oauth_token_secret={}",
        m.token.consumer_key, m.token.token_key, m.token.token_secret
    );
    let local = format!(
        "manage_etc_hosts: true\nmanual_cache_clean: true\n{}",
        super::reporting::reporting_yaml(m, "")
    );
    // debconf escaping: backslashes doubled, newlines as `\n`.
    let local = local.replace('\\', "\\\\").replace('\n', "\\n");
    let mut out = String::new();
    for pkg in ["cloud-init", "cloud-init-base"] {
        out.push_str(&format!(
            "{pkg}   cloud-init/datasources  multiselect MAAS\n"
        ));
        out.push_str(&format!(
            "{pkg}   cloud-init/maas-metadata-url  string {}\n",
            m.metadata_root()
        ));
        out.push_str(&format!(
            "{pkg}   cloud-init/maas-metadata-credentials  string {creds}\n"
        ));
        out.push_str(&format!(
            "{pkg}   cloud-init/local-cloud-config  string {local}\n"
        ));
    }
    out
}

/// The template fragment: `debconf_selections` and `late_commands`.
pub fn fragment(m: &Machine, c: &Checked) -> Value {
    let mut debconf = Mapping::new();
    debconf.insert("maas".into(), debconf_maas(m).into());
    // Always added by MAAS (LP:1642298).
    debconf.insert(
        "grub2".into(),
        "grub2   grub2/update_nvram  boolean false".into(),
    );

    let mut late = Mapping::new();
    let netboot_off = format!("{}latest/by-id/{}/", m.metadata_root(), m.system_id);
    late.insert(
        "maas".into(),
        seq([
            "wget",
            "--no-proxy",
            &netboot_off,
            "--post-data",
            "op=netboot_off",
            "-O",
            "/dev/null",
        ]
        .map(String::from)),
    );
    if m.arch() == "s390x" {
        if let Some(d) = m.boot_disk() {
            late.insert(
                "maas_00".into(),
                format!("chreipl node /dev/{}", d.name).into(),
            );
        }
    }
    if ["centos", "rhel", "ol"].contains(&c.base_os.as_str()) {
        if let Some(proxy) = &m.http_proxy {
            let script = format!("echo 'proxy={proxy}' >> /etc/yum.conf");
            late.insert(
                "yum_proxy".into(),
                seq(["curtin", "in-target", "--", "bash", "-c", &script].map(String::from)),
            );
        }
    }
    if c.is_custom() {
        for (k, v) in validation_commands(&c.base_os) {
            late.insert(k.into(), v);
        }
    }
    let mut out = Mapping::new();
    out.insert("debconf_selections".into(), Value::Mapping(debconf));
    out.insert("late_commands".into(), Value::Mapping(late));
    Value::Mapping(out)
}
