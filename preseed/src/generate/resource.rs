//! The boot resource (the uploaded image) and MAAS's upload rules for it
//! (maas-preseed.md §2.1-2.3). Messages are MAAS's own wording so users recognise them.

use serde::Deserialize;

/// The image as uploaded to MAAS.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resource {
    /// `custom/<name>`, a bare `<name>` (also custom), or `<os>/<release>`.
    pub name: String,
    /// `arch/subarch`, e.g. `amd64/generic`.
    pub architecture: String,
    #[serde(default)]
    pub title: Option<String>,
    /// `<os>/<series>` the custom image is based on, e.g. `ubuntu/jammy`.
    #[serde(default)]
    pub base_image: Option<String>,
    /// Upload filetype; MAAS's default is `tgz`.
    #[serde(default = "default_filetype")]
    pub filetype: String,
    /// Where the agent fetches the image from.
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub sha256: Option<String>,
    #[serde(default)]
    pub size: Option<u64>,
}

fn default_filetype() -> String {
    "tgz".into()
}

/// Upload filetypes, their curtin source type, and whether the image is a whole disk.
const FILETYPES: &[(&str, &str, bool)] = &[
    ("tgz", "tgz", false),
    ("tbz", "tbz", false),
    ("txz", "txz", false),
    ("tzst", "tzst", false),
    ("ddtgz", "dd-tgz", true),
    ("ddtbz", "dd-tbz", true),
    ("ddtxz", "dd-txz", true),
    ("ddtar", "dd-tar", true),
    ("ddbz2", "dd-bz2", true),
    ("ddgz", "dd-gz", true),
    ("ddxz", "dd-xz", true),
    ("ddraw", "dd-raw", true),
    ("ddzst", "dd-zst", true),
];

/// Operating systems MAAS registers (a name prefix must be one of them).
const REGISTERED_OS: &[&str] = &[
    "ubuntu",
    "ubuntu-core",
    "bootloader",
    "centos",
    "rhel",
    "custom",
    "windows",
    "suse",
    "esxi",
    "ol",
    "onie",
];

/// `LINUX_OSYSTEMS`: what a custom image may be based on.
pub const LINUX_OSYSTEMS: &[&str] = &["ubuntu", "centos", "rhel", "ol"];

const ARCHITECTURES: &[&str] = &[
    "amd64", "arm64", "armhf", "i386", "ppc64el", "s390x", "riscv64",
];

/// Ubuntu releases: codename and version. Their names (and `ubuntu/<codename>`) are reserved.
pub const UBUNTU_RELEASES: &[(&str, &str)] = &[
    ("precise", "12.04"),
    ("trusty", "14.04"),
    ("xenial", "16.04"),
    ("bionic", "18.04"),
    ("focal", "20.04"),
    ("jammy", "22.04"),
    ("noble", "24.04"),
    ("oracular", "24.10"),
    ("plucky", "25.04"),
    ("questing", "25.10"),
    ("resolute", "26.04"),
];

/// The resolved facts the generator needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    /// `custom`, or the OS of a non-custom name (`centos/8` -> `centos`).
    pub osystem: String,
    /// The custom image's name, or the release of a non-custom name.
    pub series: String,
    /// The base OS/series: the `base_image` of a custom image, the OS itself otherwise.
    pub base_os: String,
    pub base_series: String,
    /// Curtin source type (`dd-gz`, `tgz`, `tzst`, ...).
    pub source_type: &'static str,
    pub is_dd: bool,
    /// Warnings that do not stop the upload.
    pub warnings: Vec<String>,
}

impl Checked {
    pub fn is_custom(&self) -> bool {
        self.osystem == "custom"
    }

    /// The base Ubuntu release's version as (major, minor), when the base is Ubuntu.
    pub fn ubuntu_version(&self) -> Option<(u32, u32)> {
        if self.base_os != "ubuntu" {
            return None;
        }
        ubuntu_version(&self.base_series)
    }
}

/// `22.04` or `jammy` -> (22, 4).
pub fn ubuntu_version(series: &str) -> Option<(u32, u32)> {
    let v = UBUNTU_RELEASES
        .iter()
        .find(|(c, v)| *c == series || *v == series)
        .map(|(_, v)| *v)?;
    let (a, b) = v.split_once('.')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// The errors of a resource, each naming its key. All are collected, not just the first.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .0.join("\n"))]
pub struct ResourceErrors(pub Vec<String>);

/// MAAS's upload rules (`BootResourceForm` and the v3 request model), plus the checks the
/// generator needs (a source type).
pub fn check(r: &Resource) -> Result<Checked, ResourceErrors> {
    let mut errors = Vec::new();
    let mut warnings = Vec::new();

    let name = r.name.trim();
    let (osystem, series) = match name.split_once('/') {
        _ if name.is_empty() => {
            errors.push("name: missing".to_string());
            ("custom".to_string(), String::new())
        }
        Some((os, rest)) => {
            if os == "ubuntu" {
                errors.push(
                    "name: To upload an Ubuntu custom image you have to specify 'custom' as the OS \
                     (e.g. custom/<name> with base_image: ubuntu/<series>)"
                        .to_string(),
                );
            } else if !REGISTERED_OS.contains(&os) {
                errors.push(format!(
                    "name: Unsupported operating system {os}, supported operating systems: [{}]",
                    REGISTERED_OS.join(", ")
                ));
            }
            if rest.is_empty() || rest.contains('/') {
                errors.push(format!(
                    "name: {name:?} must be <os>/<name> with a non-empty name and one '/'"
                ));
            }
            (os.to_string(), rest.to_string())
        }
        None => ("custom".to_string(), name.to_string()),
    };
    if !series.is_empty() && is_reserved(&osystem, &series) {
        errors.push(format!("name: {series} is a reserved name"));
    }

    // Architecture: `arch/subarch` and a usable arch.
    match r.architecture.split_once('/') {
        Some((arch, sub)) if valid_arch_token(arch) && valid_subarch(sub) => {
            if !ARCHITECTURES.contains(&arch) {
                errors.push(format!(
                    "architecture: {arch} is not a valid usable architecture (one of {})",
                    ARCHITECTURES.join(", ")
                ));
            }
        }
        _ => errors.push(format!(
            "architecture: Not a valid architecture string {:?}, needs to be in form '<arch>/<subarch>'",
            r.architecture
        )),
    }

    // Filetype.
    let ft = r.filetype.trim().to_ascii_lowercase();
    let (source_type, is_dd) = match FILETYPES.iter().find(|(f, _, _)| *f == ft) {
        Some((_, t, dd)) => (*t, *dd),
        None => {
            errors.push(format!(
                "filetype: unknown filetype {:?}; expected one of {}",
                r.filetype,
                FILETYPES
                    .iter()
                    .map(|(f, _, _)| *f)
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
            ("tgz", false)
        }
    };
    // Per-OS allowed types (`get_image_filetypes`).
    match osystem.as_str() {
        "windows" | "esxi" | "ubuntu-core" if !is_dd => errors.push(format!(
            "filetype: {osystem} images must be disk images (dd*), not {ft}"
        )),
        "centos" | "rhel" | "ol" | "suse" if is_dd => errors.push(format!(
            "filetype: {osystem} images must be root tarballs (tgz, tbz, txz, tzst), not {ft}; \
             upload a disk image as custom/<name> with base_image: {osystem}/<series>"
        )),
        _ => {}
    }

    // base_image: only for custom images; forced empty for others.
    let (base_os, base_series) = if osystem == "custom" {
        match r.base_image.as_deref().map(str::trim) {
            None | Some("") => {
                errors.push(
                    "base_image: custom images require a valid base image name \
                     (<osystem>/<series>, e.g. ubuntu/jammy)"
                        .to_string(),
                );
                (String::new(), String::new())
            }
            Some(b) => match check_base_image(b) {
                Ok(pair) => pair,
                Err(e) => {
                    errors.push(format!("base_image: {e}"));
                    (String::new(), String::new())
                }
            },
        }
    } else {
        if r.base_image
            .as_deref()
            .is_some_and(|b| !b.trim().is_empty())
        {
            warnings.push(format!(
                "base_image is ignored for {osystem} images (MAAS stores it empty)"
            ));
        }
        (osystem.clone(), series.clone())
    };

    if let Some(sha) = &r.sha256 {
        if sha.len() != 64 || !sha.chars().all(|c| c.is_ascii_hexdigit()) {
            errors.push(format!("sha256: {sha:?} is not 64 hex digits"));
        }
    }
    if let Some(url) = &r.url {
        if !(url.starts_with("http://")
            || url.starts_with("https://")
            || url.starts_with("file://"))
        {
            errors.push(format!(
                "url: {url:?} must be an http://, https:// or file:// URL"
            ));
        }
        if url.contains(':')
            && FILETYPES
                .iter()
                .any(|(_, t, _)| url.starts_with(&format!("{t}:")))
        {
            errors.push(format!(
                "url: {url:?} carries a type prefix; give the bare URL and set filetype"
            ));
        }
    }

    if !errors.is_empty() {
        return Err(ResourceErrors(errors));
    }
    Ok(Checked {
        osystem,
        series,
        base_os,
        base_series,
        source_type,
        is_dd,
        warnings,
    })
}

fn valid_arch_token(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric())
}

fn valid_subarch(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
}

/// Names MAAS reserves: OS names, Ubuntu releases (either half of `ubuntu/<release>`),
/// and `centosNN`.
fn is_reserved(osystem: &str, series: &str) -> bool {
    if osystem != "custom" {
        return false;
    }
    let s = series.to_ascii_lowercase();
    REGISTERED_OS.contains(&s.as_str())
        || UBUNTU_RELEASES.iter().any(|(c, v)| *c == s || *v == s)
        || (s.len() > 6
            && s.len() <= 8
            && s.starts_with("centos")
            && s[6..].chars().all(|c| c.is_ascii_digit()))
}

/// `clean_base_image`: `<os>/<series>`, lower-cased, a Linux OS, a release that OS supports.
pub fn check_base_image(b: &str) -> Result<(String, String), String> {
    let lower = b.to_ascii_lowercase();
    let Some((os, series)) = lower.split_once('/') else {
        return Err(format!(
            "a base image must follow the format: <osystem>/<series> (got {b:?})"
        ));
    };
    if os.is_empty() || series.is_empty() || series.contains('/') {
        return Err(format!(
            "a base image must follow the format: <osystem>/<series> (got {b:?})"
        ));
    }
    if !LINUX_OSYSTEMS.contains(&os) {
        return Err(format!(
            "custom images require a valid non-custom OS type base image: {os} is invalid \
             (one of {})",
            LINUX_OSYSTEMS.join(", ")
        ));
    }
    let supported = match os {
        "ubuntu" => ubuntu_version(series).is_some(),
        // `8`, `9.3`, `centos8`, `rhel9`, `8-stream`: a major version, optionally prefixed
        // by the OS name, optionally with a minor version or a `-stream` suffix.
        _ => {
            let rest = series.strip_prefix(os).unwrap_or(series);
            let rest = rest.strip_suffix("-stream").unwrap_or(rest);
            let mut parts = rest.splitn(2, '.');
            let major = parts.next().unwrap_or("");
            let minor = parts.next().unwrap_or("0");
            !major.is_empty()
                && major.chars().all(|c| c.is_ascii_digit())
                && minor.chars().all(|c| c.is_ascii_digit())
        }
    };
    if !supported {
        return Err(format!(
            "please select a valid base image OS and version ({os}/{series} is not a release \
             this tool knows)"
        ));
    }
    Ok((os.to_string(), series.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(name: &str, base: Option<&str>, ft: &str) -> Resource {
        Resource {
            name: name.into(),
            architecture: "amd64/generic".into(),
            title: None,
            base_image: base.map(Into::into),
            filetype: ft.into(),
            url: Some("http://h/x".into()),
            sha256: None,
            size: None,
        }
    }

    #[test]
    fn custom_ubuntu() {
        let c = check(&res("custom/jammy-custom", Some("ubuntu/jammy"), "ddgz")).unwrap();
        assert_eq!(c.osystem, "custom");
        assert_eq!(c.series, "jammy-custom");
        assert_eq!(
            (c.base_os.as_str(), c.base_series.as_str()),
            ("ubuntu", "jammy")
        );
        assert_eq!(c.source_type, "dd-gz");
        assert_eq!(c.ubuntu_version(), Some((22, 4)));
    }

    #[test]
    fn errors_name_the_key() {
        let e = check(&res("custom/x", None, "ddgz")).unwrap_err();
        assert!(e.0[0].starts_with("base_image: custom images require a valid base image"));
        let e = check(&res("custom/x", Some("jammy"), "ddgz")).unwrap_err();
        assert!(e.0[0].contains("must follow the format: <osystem>/<series>"));
        let e = check(&res("custom/x", Some("windows/2019"), "ddgz")).unwrap_err();
        assert!(e.0[0].contains("valid non-custom OS type base image: windows is invalid"));
        let e = check(&res("custom/x", Some("ubuntu/warty"), "ddgz")).unwrap_err();
        assert!(e.0[0].contains("please select a valid base image OS and version"));
        let e = check(&res("custom/x", Some("ubuntu/jammy"), "ddlz4")).unwrap_err();
        assert!(e.0[0].starts_with("filetype: unknown filetype \"ddlz4\""));
        let e = check(&res("ubuntu/mine", None, "tgz")).unwrap_err();
        assert!(e.0[0].contains("specify 'custom' as the OS"));
        let e = check(&res("jammy", Some("ubuntu/jammy"), "tgz")).unwrap_err();
        assert_eq!(e.0, vec!["name: jammy is a reserved name".to_string()]);
        let e = check(&res("centos7", Some("centos/7"), "tgz")).unwrap_err();
        assert_eq!(e.0, vec!["name: centos7 is a reserved name".to_string()]);
        let e = check(&res("foo/bar", None, "tgz")).unwrap_err();
        assert!(e.0[0].contains("Unsupported operating system foo"));
        let mut r = res("custom/x", Some("rhel/9"), "tgz");
        r.architecture = "amd64".into();
        assert!(check(&r).unwrap_err().0[0].contains("'<arch>/<subarch>'"));
        r.architecture = "vax/generic".into();
        assert!(check(&r).unwrap_err().0[0].contains("vax is not a valid usable architecture"));
    }

    #[test]
    fn non_custom_names() {
        let c = check(&res("centos/8", None, "tgz")).unwrap();
        assert_eq!(
            (c.base_os.as_str(), c.base_series.as_str()),
            ("centos", "8")
        );
        assert!(check(&res("centos/8", None, "ddgz")).is_err());
        assert!(check(&res("windows/2019", None, "tgz")).is_err());
        assert!(check(&res("custom/r", Some("rhel/9.3"), "ddxz")).is_ok());
        assert!(check(&res("custom/r", Some("centos/8-stream"), "tzst")).is_ok());
    }
}
