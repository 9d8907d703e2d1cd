//! What MAAS and the deployed OS need from the image's root: the OS (`os-release`) and whether
//! it fits the base image (which picks the ephemeral OS), cloud-init (version, network config
//! v2), netplan where MAAS checks for it, the datasource list, a kernel and initramfs, and for
//! a root tarball, grub for the builtin curthooks.

use preseed::generate::network::{version_for, Version};
use preseed::generate::resource::{check_base_image, ubuntu_version, UBUNTU_RELEASES};
use yaml_serde::Value;

use super::report::{self, Report};
use super::tree::Tree;
use crate::image_check::{self, os_release_field, Requirements, CLOUD_INIT, NETPLAN};

/// The series MAAS commissions with by default, the base of a custom image uploaded without
/// `base_image` (maas-preseed.md §2.3).
pub const DEFAULT_BASE: (&str, &str) = ("ubuntu", "noble");

/// The base image a check is made for.
#[derive(Debug, Clone)]
pub struct Base {
    pub os: String,
    pub series: String,
    /// Given with --base-image (else MAAS's default).
    pub given: bool,
}

impl Base {
    /// `--base-image`, checked with MAAS's upload rules; the default when absent.
    pub fn resolve(r: &mut Report, given: Option<&str>) -> Base {
        let default = Base {
            os: DEFAULT_BASE.0.into(),
            series: DEFAULT_BASE.1.into(),
            given: false,
        };
        let Some(b) = given else {
            return default;
        };
        match check_base_image(b) {
            Ok((os, series)) => Base {
                os,
                series,
                given: true,
            },
            Err(e) => {
                r.error(
                    "base-image",
                    format!("--base-image {b}: MAAS's upload refuses it: {e}"),
                );
                default
            }
        }
    }

    fn name(&self) -> String {
        format!("{}/{}", self.os, self.series)
    }

    pub fn network(&self) -> Version {
        version_for(&self.os, ubuntu_version(&self.series), false)
    }

    /// The ephemeral OS MAAS boots to deploy a custom image of this base: the base itself for
    /// Ubuntu, the commissioning OS for anything else (rpc/boot.py).
    fn ephemeral(&self) -> String {
        if self.os == "ubuntu" {
            format!("Ubuntu {}", self.series)
        } else {
            format!(
                "the commissioning OS ({}/{} by default)",
                DEFAULT_BASE.0, DEFAULT_BASE.1
            )
        }
    }
}

/// The root's os-release, parsed.
pub fn os_release(t: &dyn Tree) -> Option<report::Os> {
    let text = t
        .read("etc/os-release")
        .or_else(|| t.read("usr/lib/os-release"))?;
    let f = |k: &str| os_release_field(&text, k).filter(|v| !v.is_empty());
    Some(report::Os {
        id: f("ID"),
        id_like: f("ID_LIKE")
            .map(|v| v.split_whitespace().map(str::to_string).collect())
            .unwrap_or_default(),
        version_id: f("VERSION_ID"),
        codename: f("VERSION_CODENAME").or_else(|| f("UBUNTU_CODENAME")),
        pretty_name: f("PRETTY_NAME"),
    })
}

fn family(os: &report::Os) -> Vec<&str> {
    os.id
        .iter()
        .map(String::as_str)
        .chain(os.id_like.iter().map(String::as_str))
        .collect()
}

const RHEL_LIKE: &[&str] = &["rhel", "centos", "fedora", "rocky", "almalinux", "ol"];

/// Every check of a Linux root. Returns false when the root has no os-release (not Linux:
/// the Linux checks are skipped, as MAAS skips them for Windows and ESXi).
pub fn check(r: &mut Report, t: &dyn Tree, base: &Base, has_hook: bool) -> bool {
    let Some(os) = os_release(t) else {
        r.warn(
            "os",
            "no etc/os-release: not a Linux root (Windows, ESXi?): the Linux checks are skipped",
        );
        return false;
    };
    let name = os
        .pretty_name
        .clone()
        .or_else(|| os.id.clone())
        .unwrap_or_else(|| "unnamed".into());
    r.ok(
        "os",
        format!("{name} (os-release ID={})", os.id.as_deref().unwrap_or("?")),
    );
    base_fit(r, &os, base);
    r.facts.os = Some(os);
    cloud_init(r, t, base, has_hook);
    kernel(r, t);
    true
}

/// Does the image's OS fit the base image, as MAAS will treat it?
fn base_fit(r: &mut Report, os: &report::Os, base: &Base) {
    let fam = family(os);
    let id = os.id.as_deref().unwrap_or("?");
    let lead = if base.given {
        format!("base_image {}", base.name())
    } else {
        format!(
            "no --base-image: MAAS's default is the commissioning OS ({})",
            base.name()
        )
    };
    let eph = format!("MAAS boots {} to deploy it", base.ephemeral());
    match base.os.as_str() {
        "ubuntu" if id == "ubuntu" => {
            let want = UBUNTU_RELEASES
                .iter()
                .find(|(c, v)| *c == base.series || *v == base.series)
                .copied();
            let same = want.is_some_and(|(c, v)| {
                os.codename.as_deref() == Some(c) || os.version_id.as_deref() == Some(v)
            });
            if same {
                r.ok("base-image", format!("{lead}: {eph}, the image's own release"));
            } else {
                r.warn(
                    "base-image",
                    format!(
                        "{lead}, but the image is Ubuntu {}: {eph}, whose kernel and tools run its hooks; upload it with base_image ubuntu/{}",
                        os.version_id.as_deref().unwrap_or("(no VERSION_ID)"),
                        os.codename.as_deref().unwrap_or("<series>")
                    ),
                );
            }
        }
        "ubuntu" if fam.contains(&"debian") => r.ok(
            "base-image",
            format!("{lead}: {eph}; the {id} image is deployed as Ubuntu-based (network config v2, cloud-init and netplan checked), as packer-maas deploys Debian"),
        ),
        "ubuntu" => r.warn(
            "base-image",
            format!(
                "{lead}, but the image is {id}{}: MAAS sends Ubuntu's apt config and network config v2 and checks for netplan{}",
                if fam.iter().any(|f| RHEL_LIKE.contains(f)) { " (RHEL-like)" } else { "" },
                if fam.iter().any(|f| RHEL_LIKE.contains(f)) {
                    let major = os.version_id.as_deref().and_then(|v| v.split('.').next()).unwrap_or("<major>");
                    format!("; upload it with base_image rhel/{major}")
                } else {
                    String::new()
                }
            ),
        ),
        _ if fam.iter().any(|f| RHEL_LIKE.contains(f)) => {
            let major = os
                .version_id
                .as_deref()
                .and_then(|v| v.split('.').next())
                .unwrap_or("");
            let series_major: String = base
                .series
                .chars()
                .skip_while(|c| !c.is_ascii_digit())
                .take_while(|c| c.is_ascii_digit())
                .collect();
            if !major.is_empty() && !series_major.is_empty() && major != series_major {
                r.warn(
                    "base-image",
                    format!("{lead}, but the image is {id} {major}: {eph}; upload it with base_image {}/{major}", base.os),
                );
            } else {
                r.ok(
                    "base-image",
                    format!("{lead}: {eph}; the {id} image is deployed as RHEL-like (network config v1, no apt config)"),
                );
            }
        }
        _ => r.warn(
            "base-image",
            format!(
                "{lead}, but the image is {id}: MAAS treats it as {} (network config v1, no apt config)",
                base.os
            ),
        ),
    }
}

/// cloud-init's version: the dpkg package's, else its python module's `__VERSION__`.
fn cloud_init_version(t: &dyn Tree) -> (Option<String>, Option<String>) {
    let module = version_py(t);
    let from_module = module.as_deref().and_then(|text| {
        text.lines().find_map(|l| {
            let (k, v) = l.split_once('=')?;
            (k.trim() == "__VERSION__").then(|| v.trim().trim_matches(['"', '\'']).to_string())
        })
    });
    let v = image_check::dpkg_version(t, "cloud-init").or(from_module);
    (v, module)
}

/// `cloudinit/version.py` under the distro's python (`dist-packages` or `site-packages`).
fn version_py(t: &dyn Tree) -> Option<String> {
    t.list("usr/lib")
        .into_iter()
        .filter(|d| d.starts_with("python"))
        .flat_map(|d| {
            ["dist-packages", "site-packages"]
                .map(|p| format!("usr/lib/{d}/{p}/cloudinit/version.py"))
        })
        .find_map(|p| t.read(&p))
}

fn cloud_init(r: &mut Report, t: &dyn Tree, base: &Base, has_hook: bool) {
    let req = Requirements::for_os(Some(&base.os));
    let mut ci = report::CloudInit::default();
    if !image_check::has_tool(t, &CLOUD_INIT) {
        r.error("cloud-init", image_check::missing_message("cloud-init"));
    } else {
        let (version, module) = cloud_init_version(t);
        ci.version = version.clone();
        let v2 = match &module {
            Some(m) => m.contains("NETWORK_CONFIG_V2"),
            // The flag came with 18.4 (as the network stage judges it).
            None => version
                .as_deref()
                .and_then(image_check::major_minor)
                .is_some_and(|v| v >= (18, 4)),
        };
        ci.network_config_v2 = Some(v2);
        let vtext = version.as_deref().unwrap_or("of unknown version");
        match base.network() {
            Version::V2 { .. } if !v2 => r.error(
                "cloud-init",
                format!("cloud-init {vtext} does not take network config v2, which MAAS sends for an Ubuntu base: the deployed machine would come up without its network"),
            ),
            Version::V2 { .. } => r.ok(
                "cloud-init",
                format!("cloud-init {vtext}, takes network config v2 (MAAS sends v2 for an Ubuntu base)"),
            ),
            Version::V1 => r.ok(
                "cloud-init",
                format!("cloud-init {vtext} (MAAS sends network config v1 for a {} base)", base.os),
            ),
        }
    }
    if req.netplan {
        if image_check::has_tool(t, &NETPLAN) {
            r.facts.netplan = Some(true);
            r.ok(
                "netplan",
                format!("netplan present (MAAS checks for it on a {} base)", base.os),
            );
        } else {
            r.facts.netplan = Some(false);
            r.error("netplan", image_check::missing_message("netplan"));
        }
    } else {
        r.facts.netplan = Some(image_check::has_tool(t, &NETPLAN));
    }
    ci.datasource_list = datasources(r, t, has_hook);
    r.facts.cloud_init = Some(ci);
}

/// The file MAAS's `cloudconfig` `maas-datasource` entry becomes in the target (curtin's name).
const MAAS_DATASOURCE_FILE: &str = "95-cloudconfig-maas-datasource.cfg";

/// `datasource_list` as cloud-init merges it: cloud.cfg, then cloud.cfg.d/*.cfg in order.
fn datasources(r: &mut Report, t: &dyn Tree, has_hook: bool) -> Option<Vec<String>> {
    let mut files = vec![("cloud.cfg".to_string(), "etc/cloud/cloud.cfg".to_string())];
    let mut dropins: Vec<String> = t
        .list("etc/cloud/cloud.cfg.d")
        .into_iter()
        .filter(|n| n.ends_with(".cfg"))
        .collect();
    dropins.sort();
    files.extend(
        dropins
            .into_iter()
            .map(|n| (n.clone(), format!("etc/cloud/cloud.cfg.d/{n}"))),
    );
    // (file, list) for each file that sets it.
    let mut sets: Vec<(String, Vec<String>)> = vec![];
    for (name, path) in files {
        let Some(text) = t.read(&path) else { continue };
        let Ok(v) = preseed::yaml::from_str(&text) else {
            r.warn(
                "datasource",
                format!("/{path} is not valid YAML: cloud-init will ignore it"),
            );
            continue;
        };
        let list = match v.get("datasource_list") {
            Some(Value::Sequence(s)) => s
                .iter()
                .filter_map(|x| x.as_str().map(|s| s.trim().to_string()))
                .collect(),
            Some(Value::String(s)) => s
                .trim_matches(['[', ']'])
                .split(',')
                .map(|x| x.trim().to_string())
                .filter(|x| !x.is_empty())
                .collect(),
            _ => continue,
        };
        sets.push((name, list));
    }
    let has_maas = |l: &[String]| l.iter().any(|d| d == "MAAS");
    let Some((file, list)) = sets.last().cloned() else {
        r.ok(
            "datasource",
            "no datasource_list in the image: cloud-init's default, which has MAAS",
        );
        return None;
    };
    if has_maas(&list) {
        r.ok(
            "datasource",
            format!(
                "datasource_list [{}] (from {file}) allows MAAS",
                list.join(", ")
            ),
        );
        return Some(list);
    }
    // MAAS's cloudconfig writes `datasource_list: [ MAAS ]`; a later file wins over it.
    if let Some((later, l)) = sets
        .iter()
        .rev()
        .find(|(f, _)| f.as_str() > MAAS_DATASOURCE_FILE && f != "cloud.cfg")
    {
        r.error(
            "datasource",
            format!("datasource_list [{}] in cloud.cfg.d/{later} comes after MAAS's {MAAS_DATASOURCE_FILE} and leaves MAAS out: the deployed OS never reports back and the deployment times out", l.join(", ")),
        );
    } else if has_hook {
        r.warn(
            "datasource",
            format!("datasource_list [{}] (from {file}) leaves MAAS out: MAAS's cloudconfig ({MAAS_DATASOURCE_FILE}) puts it back only if the image's curtin-hooks writes the cloudconfig (packer-maas hooks do)", list.join(", ")),
        );
    } else {
        r.ok(
            "datasource",
            format!("datasource_list [{}] (from {file}) leaves MAAS out, but the builtin curthooks write MAAS's cloudconfig ({MAAS_DATASOURCE_FILE}), which comes later", list.join(", ")),
        );
    }
    Some(list)
}

/// A kernel and an initramfs in /boot (or /usr/lib/modules/<version>/vmlinuz, BLS style).
fn kernel(r: &mut Report, t: &dyn Tree) {
    let boot = t.list("boot");
    let mut kernels: Vec<String> = boot
        .iter()
        .filter(|n| {
            n.starts_with("vmlinuz") || n.starts_with("vmlinux") || n.starts_with("kernel-")
        })
        .map(|n| format!("boot/{n}"))
        .collect();
    for v in t.list("usr/lib/modules") {
        let p = format!("usr/lib/modules/{v}/vmlinuz");
        if t.exists(&p) {
            kernels.push(p);
        }
    }
    let initrds: Vec<String> = boot
        .iter()
        .filter(|n| n.starts_with("initrd") || n.starts_with("initramfs"))
        .map(|n| format!("boot/{n}"))
        .collect();
    let separate_boot = t.read("etc/fstab").is_some_and(|f| {
        f.lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .any(|l| l.split_whitespace().nth(1) == Some("/boot"))
    });
    let list = |v: &[String]| {
        let mut s = v.iter().take(3).cloned().collect::<Vec<_>>().join(", ");
        if v.len() > 3 {
            s.push_str(&format!(" and {} more", v.len() - 3));
        }
        s
    };
    if kernels.is_empty() {
        if separate_boot {
            r.warn("kernel", "no kernel in the root's /boot, which is a separate filesystem in the image's fstab: not inspected");
        } else {
            r.error(
                "kernel",
                "no kernel in /boot (vmlinuz-*) or /usr/lib/modules/*/vmlinuz: the deployed machine has nothing to boot",
            );
        }
    } else {
        r.ok("kernel", list(&kernels));
    }
    if initrds.is_empty() {
        if !kernels.is_empty() {
            r.warn(
                "initramfs",
                "no initramfs in /boot: the builtin curthooks make one (update-initramfs); an image hook must",
            );
        }
    } else {
        r.ok("initramfs", list(&initrds));
    }
    r.facts.kernels = kernels;
    r.facts.initramfs = initrds;
}

/// A root tarball (or a dd image without a loader) has no bootloader of its own: the builtin
/// curthooks run grub-install in the target (an image hook does its own).
pub fn builtin_bootloader(r: &mut Report, t: &dyn Tree, has_hook: bool) {
    if has_hook {
        r.ok(
            "bootloader",
            "installed by the image's /curtin/curtin-hooks (the builtin curthooks do not run)",
        );
        return;
    }
    let grub = [
        "usr/sbin/grub-install",
        "sbin/grub-install",
        "usr/bin/grub-install",
    ]
    .iter()
    .any(|p| t.is_executable(p));
    let platforms: Vec<&str> = [("i386-pc", "BIOS"), ("x86_64-efi", "UEFI")]
        .iter()
        .filter(|(d, _)| t.exists(&format!("usr/lib/grub/{d}")))
        .map(|(_, f)| *f)
        .collect();
    if !grub {
        r.error(
            "bootloader",
            "grub-install is not in the image: the builtin curthooks install the bootloader with it (install grub2-common and grub-pc-bin / grub-efi-amd64-bin)",
        );
    } else if platforms.is_empty() {
        r.error(
            "bootloader",
            "grub-install is in the image but no GRUB platform (usr/lib/grub/i386-pc or x86_64-efi): install grub-pc-bin or grub-efi-amd64-bin",
        );
    } else {
        r.facts.firmware = platforms.iter().map(|f| f.to_lowercase()).collect();
        r.ok(
            "bootloader",
            format!(
                "the builtin curthooks run grub-install in the target: GRUB for {}",
                platforms.join(" and ")
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inspect::report::Verdict;
    use crate::inspect::tree::Mounted;
    use std::os::unix::fs::PermissionsExt;

    fn root(files: &[(&str, &str, u32)]) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        for (p, text, mode) in files {
            let f = d.path().join(p);
            std::fs::create_dir_all(f.parent().unwrap()).unwrap();
            std::fs::write(&f, text).unwrap();
            std::fs::set_permissions(&f, std::fs::Permissions::from_mode(*mode)).unwrap();
        }
        d
    }

    fn verdict(r: &Report, check: &str) -> (Verdict, String) {
        let c = r.checks.iter().find(|c| c.check == check).expect(check);
        (c.verdict, c.reason.clone())
    }

    #[test]
    fn debian_on_the_default_base() {
        let d = root(&[
            ("etc/os-release", "PRETTY_NAME=\"Debian GNU/Linux 13 (trixie)\"\nID=debian\nVERSION_ID=\"13\"\nVERSION_CODENAME=trixie\n", 0o644),
            ("usr/bin/cloud-init", "#!/usr/bin/python3\n", 0o755),
            ("usr/sbin/netplan", "#!/usr/bin/python3\n", 0o755),
            ("usr/lib/python3/dist-packages/cloudinit/version.py", "__VERSION__ = \"25.1.4\"\nFEATURES = [\"NETWORK_CONFIG_V1\", \"NETWORK_CONFIG_V2\"]\n", 0o644),
            ("etc/cloud/cloud.cfg.d/90_dpkg.cfg", "datasource_list: [ NoCloud, MAAS, None ]\n", 0o644),
            ("boot/vmlinuz-6.12.0-1-amd64", "", 0o644),
            ("boot/initrd.img-6.12.0-1-amd64", "", 0o644),
        ]);
        let mut r = Report::new("x");
        let base = Base::resolve(&mut r, None);
        assert!(check(&mut r, &Mounted(d.path().into()), &base, false));
        r.finish();
        assert_eq!(r.exit_code, 0, "{}", r.text());
        assert!(verdict(&r, "cloud-init").1.contains("25.1.4"));
        assert!(verdict(&r, "base-image").1.contains("Ubuntu-based"));
    }

    #[test]
    fn missing_tools_and_datasource_override() {
        let d = root(&[
            (
                "etc/os-release",
                "ID=ubuntu\nVERSION_ID=\"22.04\"\nVERSION_CODENAME=jammy\n",
                0o644,
            ),
            (
                "etc/cloud/cloud.cfg.d/99_pve.cfg",
                "datasource_list: [ NoCloud, ConfigDrive ]\n",
                0o644,
            ),
        ]);
        let mut r = Report::new("x");
        let base = Base::resolve(&mut r, Some("ubuntu/noble"));
        check(&mut r, &Mounted(d.path().into()), &base, false);
        assert_eq!(
            verdict(&r, "cloud-init"),
            (Verdict::Error, image_check::missing_message("cloud-init"))
        );
        assert_eq!(
            verdict(&r, "netplan"),
            (Verdict::Error, image_check::missing_message("netplan"))
        );
        assert_eq!(verdict(&r, "base-image").0, Verdict::Warning);
        assert!(verdict(&r, "base-image")
            .1
            .contains("base_image ubuntu/jammy"));
        let (v, why) = verdict(&r, "datasource");
        assert_eq!(v, Verdict::Error);
        assert!(why.contains("99_pve.cfg"), "{why}");
        assert_eq!(verdict(&r, "kernel").0, Verdict::Error);
    }

    #[test]
    fn rhel_base_and_bad_base() {
        let d = root(&[(
            "etc/os-release",
            "ID=\"rocky\"\nID_LIKE=\"rhel centos fedora\"\nVERSION_ID=\"9.4\"\n",
            0o644,
        )]);
        let mut r = Report::new("x");
        let base = Base::resolve(&mut r, Some("rhel/8"));
        check(&mut r, &Mounted(d.path().into()), &base, false);
        let (v, why) = verdict(&r, "base-image");
        assert_eq!(v, Verdict::Warning);
        assert!(why.contains("base_image rhel/9"), "{why}");
        // No netplan check on a RHEL base.
        assert!(r.checks.iter().all(|c| c.check != "netplan"));
        let mut r = Report::new("x");
        Base::resolve(&mut r, Some("debian/12"));
        let (v, why) = verdict(&r, "base-image");
        assert_eq!(v, Verdict::Error);
        assert!(why.contains("valid non-custom OS type"), "{why}");
    }
}
