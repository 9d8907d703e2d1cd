//! MAAS-style config generation (issue 7): from a machine and a boot resource, the curtin
//! config MAAS would compose for that deployment, as its ordered fragments
//! (maas-preseed.md §1.2) or merged; the ephemeral OS user-data that runs `deployer install`;
//! and MAAS's upload rules for the resource.
//!
//! Everything is built as `yaml_serde::Value` mappings in MAAS's key order, so that what we
//! print is what the agent loads.

pub mod archive;
pub mod machine;
pub mod network;
pub mod reporting;
pub mod resource;
pub mod storage;
pub mod template;
pub mod userdata;

use yaml_serde::{Mapping, Value};

pub use machine::Machine;
pub use resource::{Checked, Resource, ResourceErrors};

/// An input problem, naming the key it is about.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct GenError {
    pub key: String,
    pub message: String,
}

impl GenError {
    pub fn new(key: &str, message: impl Into<String>) -> Self {
        GenError {
            key: key.to_string(),
            message: message.into(),
        }
    }
}

/// Why generation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{origin}: {message}")]
    Parse { origin: String, message: String },
    #[error("image: {0}")]
    Resource(ResourceErrors),
    #[error("machine: {0}")]
    Machine(GenError),
}

pub(crate) fn seq<I: IntoIterator<Item = String>>(items: I) -> Value {
    Value::Sequence(items.into_iter().map(Value::String).collect())
}

/// Parse a machine document (YAML or JSON); errors name the file and the key path.
pub fn parse_machine(origin: &str, text: &str) -> Result<Machine, Error> {
    parse(origin, text)
}

/// Parse a boot resource document (YAML or JSON).
pub fn parse_resource(origin: &str, text: &str) -> Result<Resource, Error> {
    parse(origin, text)
}

/// Read with the config reader (PyYAML's YAML 1.1), then type; errors name the line, column
/// and key path, as config errors do.
fn parse<T: serde::de::DeserializeOwned>(origin: &str, text: &str) -> Result<T, Error> {
    let read = crate::yaml::read(text).map_err(|e| Error::Parse {
        origin: format!("{origin}:{}:{}", e.line, e.column),
        message: e.message,
    })?;
    crate::config::typed(&read.value).map_err(|issue| {
        let at = read
            .marks
            .at(&issue.path)
            .map(|m| format!(":{}:{}", m.line, m.column))
            .unwrap_or_default();
        let path = issue.path_string();
        Error::Parse {
            origin: format!("{origin}{at}"),
            message: if path.is_empty() {
                issue.message
            } else {
                format!("{path}: {}", issue.message)
            },
        }
    })
}

/// One config part, named as MAAS's composer function is (for the archive's comments).
#[derive(Debug, Clone)]
pub struct Fragment {
    pub name: &'static str,
    pub value: Value,
}

/// The generated config.
#[derive(Debug, Clone)]
pub struct Generated {
    /// The install source as MAAS passes it to `curtin install` (`dd-gz:http://...`).
    pub source: String,
    /// The parts in MAAS's order; later ones win when merged.
    pub fragments: Vec<Fragment>,
    pub checked: Checked,
}

/// curtin's source string for a type: tarballs MAAS serves bare, everything else prefixed.
pub fn source_string(source_type: &str, url: &str) -> String {
    match source_type {
        "tgz" | "tbz" | "txz" => url.to_string(),
        t => format!("{t}:{url}"),
    }
}

/// The `sources:` fragment: `00_cmdline`, the key curtin gives the positional source. A
/// mapping when we know a checksum or size (our extension), else MAAS's prefixed string.
fn sources_fragment(r: &Resource, c: &Checked, url: &str) -> Value {
    let value = if r.sha256.is_some() || r.size.is_some() {
        let mut s = Mapping::new();
        s.insert("type".into(), c.source_type.into());
        s.insert("uri".into(), url.into());
        if let Some(h) = &r.sha256 {
            s.insert("sha256".into(), h.to_ascii_lowercase().into());
        }
        if let Some(n) = r.size {
            s.insert("size".into(), n.into());
        }
        Value::Mapping(s)
    } else {
        Value::String(source_string(c.source_type, url))
    };
    let mut src = Mapping::new();
    src.insert("00_cmdline".into(), value);
    let mut out = Mapping::new();
    out.insert("sources".into(), Value::Mapping(src));
    Value::Mapping(out)
}

fn one(key: &str, v: Value) -> Value {
    let mut m = Mapping::new();
    m.insert(key.into(), v);
    Value::Mapping(m)
}

/// Compose the config parts for this machine and image, in MAAS's order (§1.2), after the
/// source.
pub fn generate(m: &Machine, r: &Resource) -> Result<Generated, Error> {
    let mut c = resource::check(r).map_err(Error::Resource)?;
    // MAAS logs this for bases its network code was not written for (ol, suse...).
    if !["ubuntu", "ubuntu-core", "centos", "rhel", "windows"].contains(&c.base_os.as_str()) {
        c.warnings.push(format!(
            "Custom network configuration is not supported on {}/{}: the network config is v1 \
             and its rendering is left to the image's cloud-init",
            c.base_os, c.base_series
        ));
    }
    let url = r.url.as_deref().ok_or_else(|| {
        Error::Resource(ResourceErrors(vec![
            "url: missing; generate needs the URL the image is served from".into(),
        ]))
    })?;
    check_machine(m).map_err(Error::Machine)?;

    let mut parts = vec![Fragment {
        name: "source",
        value: sources_fragment(r, &c, url),
    }];
    let mut push = |name, value| parts.push(Fragment { name, value });

    push(
        "storage",
        storage::generate(m, c.base_os == "esxi").map_err(Error::Machine)?,
    );
    // apt only for Ubuntu bases (MAAS: base os ubuntu or custom-unresolved).
    if c.base_os == "ubuntu" {
        push("archive", archive::fragment(m));
    }
    push("reporter", reporting::fragment(m));
    let version = network::version_for(&c.base_os, c.ubuntu_version(), m.force_v1_network);
    push(
        "network",
        network::generate(m, version).map_err(Error::Machine)?,
    );
    if !c.is_custom() {
        if let Some(size) = m.swap_size {
            push("swap", one("swap", one("size", format!("{size}B").into())));
        }
        if let Some(pkg) = &m.kernel_package {
            let mut k = Mapping::new();
            k.insert("package".into(), pkg.clone().into());
            k.insert("mapping".into(), Value::Mapping(Mapping::new()));
            push("kernel", one("kernel", Value::Mapping(k)));
        }
    }
    if m.verbose {
        let mut v = Mapping::new();
        v.insert("verbosity".into(), 3.into());
        v.insert("showtrace".into(), true.into());
        push("verbose", Value::Mapping(v));
    }
    push("cloud_config", reporting::cloudconfig(m));
    push(
        "kernel_crash_dump",
        one(
            "kernel-crash-dumps",
            one("enabled", m.kernel_crash_dumps.into()),
        ),
    );
    push("userdata", template::fragment(m, &c));

    Ok(Generated {
        source: source_string(c.source_type, url),
        fragments: parts,
        checked: c,
    })
}

fn check_machine(m: &Machine) -> Result<(), GenError> {
    let ok_id = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    };
    if !ok_id(&m.system_id) {
        return Err(GenError::new(
            "system_id",
            format!("{:?} is not a system id", m.system_id),
        ));
    }
    if !ok_id(&m.hostname) {
        return Err(GenError::new(
            "hostname",
            format!("{:?} is not a host name", m.hostname),
        ));
    }
    if !(m.metadata_url.starts_with("http://") || m.metadata_url.starts_with("https://")) {
        return Err(GenError::new(
            "metadata_url",
            format!(
                "{:?} must be an http(s) URL such as http://10.0.0.2:5248/MAAS/metadata/",
                m.metadata_url
            ),
        ));
    }
    match m.architecture.split_once('/') {
        Some((a, s)) if !a.is_empty() && !s.is_empty() => {}
        _ => {
            return Err(GenError::new(
                "architecture",
                format!(
                    "{:?} needs to be in form '<arch>/<subarch>'",
                    m.architecture
                ),
            ))
        }
    }
    for (k, v) in [
        ("token.consumer_key", &m.token.consumer_key),
        ("token.token_key", &m.token.token_key),
        ("token.token_secret", &m.token.token_secret),
    ] {
        if v.is_empty() || v.contains(char::is_whitespace) {
            return Err(GenError::new(k, "must be a non-empty token without spaces"));
        }
    }
    Ok(())
}

impl Generated {
    /// All parts folded in order, as `get_curtin_merged_config` does.
    pub fn merged(&self) -> Value {
        let mut out = Value::Mapping(Mapping::new());
        for f in &self.fragments {
            crate::load::merge(&mut out, f.value.clone());
        }
        out
    }

    /// The merged config as one YAML document.
    pub fn merged_yaml(&self) -> String {
        format!(
            "#curtin-config\n# source: {}\n{}",
            self.source,
            crate::yaml::to_string(&self.merged()).expect("YAML of a Value")
        )
    }

    /// The parts as separate documents named as MAAS's installer names them
    /// (`config-000.cfg`, ...), each a `#curtin-config` YAML document.
    pub fn parts_yaml(&self) -> Vec<(String, String)> {
        self.fragments
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let body = crate::yaml::to_string(&f.value).expect("YAML of a Value");
                (
                    format!("config-{i:03}.cfg"),
                    format!("#curtin-config\n# {i:03} {}\n{body}", f.name),
                )
            })
            .collect()
    }

    /// The parts as a `#curtin-config-archive`: a YAML list of `text/curtin-config` items that
    /// curtin (and deployer) merge in order.
    pub fn archive_yaml(&self) -> String {
        let mut items = Vec::new();
        for (_, content) in self.parts_yaml() {
            let mut item = Mapping::new();
            item.insert("type".into(), "text/curtin-config".into());
            item.insert("content".into(), content.into());
            items.push(Value::Mapping(item));
        }
        format!(
            "#curtin-config-archive\n# source: {}\n{}",
            self.source,
            crate::yaml::to_string(&Value::Sequence(items)).expect("YAML of a Value")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every upload filetype's source string reads back, through the model's curtin
    /// `sanitize_source`, as the same source type.
    #[test]
    fn source_strings_round_trip() {
        for ft in [
            "tgz", "tbz", "txz", "tzst", "ddtgz", "ddtbz", "ddtxz", "ddtar", "ddbz2", "ddgz",
            "ddxz", "ddraw", "ddzst",
        ] {
            let r = Resource {
                name: "custom/x".into(),
                architecture: "amd64/generic".into(),
                title: None,
                base_image: Some("ubuntu/noble".into()),
                filetype: ft.into(),
                url: Some("http://h/i".into()),
                sha256: None,
                size: None,
            };
            let c = resource::check(&r).unwrap();
            let s = source_string(c.source_type, "http://h/i");
            let parsed = crate::sources::parse(&s);
            // MAAS serves tarballs as bare URLs, which curtin reads as tgz (and its smtar,
            // like our magic-byte detection, finds the real compression).
            let want = if s.starts_with("http") {
                "tgz"
            } else {
                c.source_type
            };
            assert_eq!(parsed.kind.prefix(), want, "{ft}: {s}");
            assert_eq!(parsed.uri, "http://h/i");
            assert_eq!(parsed.kind.is_dd(), c.is_dd, "{ft}");
            assert_eq!(
                s.starts_with("http"),
                ["tgz", "tbz", "txz"].contains(&ft),
                "{ft}"
            );
        }
    }
}
