//! The reporting, install and cloudconfig fragments (maas-preseed.md §1.3.3, §1.3.7).

use yaml_serde::{Mapping, Value};

use super::machine::Machine;
use super::seq;

/// `<metadata_url>/status/<system_id>`: MAAS's webhook for curtin's events.
pub fn endpoint(m: &Machine) -> String {
    format!("{}status/{}", m.metadata_root(), m.system_id)
}

/// The `maas` webhook handler with the machine's OAuth token.
pub fn webhook(m: &Machine) -> Mapping {
    let mut h = Mapping::new();
    h.insert("type".into(), "webhook".into());
    h.insert("endpoint".into(), endpoint(m).into());
    h.insert("consumer_key".into(), m.token.consumer_key.clone().into());
    h.insert("token_key".into(), m.token.token_key.clone().into());
    h.insert("token_secret".into(), m.token.token_secret.clone().into());
    h
}

/// `reporting:` and `install:` (log file, error tarball, files posted with the final event).
pub fn fragment(m: &Machine) -> Value {
    let mut reporting = Mapping::new();
    reporting.insert("maas".into(), Value::Mapping(webhook(m)));
    let mut install = Mapping::new();
    install.insert("log_file".into(), "/tmp/install.log".into());
    install.insert("error_tarfile".into(), "/tmp/curtin-logs.tar".into());
    install.insert(
        "post_files".into(),
        seq(["/tmp/install.log", "/tmp/curtin-logs.tar"].map(String::from)),
    );
    let mut out = Mapping::new();
    out.insert("reporting".into(), Value::Mapping(reporting));
    out.insert("install".into(), Value::Mapping(install));
    Value::Mapping(out)
}

fn entry(path: &str, content: String) -> Value {
    let mut e = Mapping::new();
    e.insert("path".into(), path.into());
    e.insert("content".into(), content.into());
    Value::Mapping(e)
}

/// The MAAS datasource block (`consumer_key, metadata_url, token_key, token_secret`).
pub fn datasource_yaml(m: &Machine, metadata_url: &str) -> String {
    format!(
        "datasource:\n  MAAS:\n    consumer_key: {}\n    metadata_url: {}\n    token_key: {}\n    token_secret: {}\n",
        m.token.consumer_key, metadata_url, m.token.token_key, m.token.token_secret
    )
}

/// `cloudconfig:` files for the deployed OS's cloud-init: MAAS datasource and reporting.
pub fn cloudconfig(m: &Machine) -> Value {
    let mut c = Mapping::new();
    c.insert(
        "maas-datasource".into(),
        entry(
            "/etc/cloud/cloud.cfg.d/90_maas_datasource.cfg",
            "datasource_list: [ MAAS ]".into(),
        ),
    );
    c.insert(
        "maas-cloud-config".into(),
        entry(
            "/etc/cloud/cloud.cfg.d/90_maas_cloud_config.cfg",
            format!("#cloud-config\n{}", datasource_yaml(m, &m.metadata_root())),
        ),
    );
    if let Some(email) = &m.owner_email {
        c.insert(
            "maas-ubuntu-sso".into(),
            entry(
                "/etc/cloud/cloud.cfg.d/90_maas_ubuntu_sso.cfg",
                format!("#cloud-config\nsnap:\n  email: {email}\n"),
            ),
        );
    }
    c.insert(
        "maas-reporting".into(),
        entry(
            "/etc/cloud/cloud.cfg.d/90_maas_cloud_init_reporting.cfg",
            format!("#cloud-config\n{}", reporting_yaml(m, "")),
        ),
    );
    let mut out = Mapping::new();
    out.insert("cloudconfig".into(), Value::Mapping(c));
    Value::Mapping(out)
}

/// `reporting: {maas: {...}}` as block YAML, each line prefixed by `indent`.
pub fn reporting_yaml(m: &Machine, indent: &str) -> String {
    let mut s = String::new();
    for line in [
        "reporting:".to_string(),
        "  maas:".to_string(),
        format!("    consumer_key: {}", m.token.consumer_key),
        format!("    endpoint: {}", endpoint(m)),
        format!("    token_key: {}", m.token.token_key),
        format!("    token_secret: {}", m.token.token_secret),
        "    type: webhook".to_string(),
    ] {
        s.push_str(indent);
        s.push_str(&line);
        s.push('\n');
    }
    s
}
