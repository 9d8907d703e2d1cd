//! `apt:` for Ubuntu bases (maas-preseed.md §1.3.2). Custom images always get the one-line
//! sources format, even on a noble base (MAAS tests the deployed OS, which is `custom`).

use yaml_serde::{Mapping, Value};

use super::machine::Machine;

const COMPONENTS: &str = "main restricted universe multiverse";
const POCKETS: &[&str] = &["", "-updates", "-security", "-backports"];

/// The archive for this architecture: the main archive for x86, ports for the rest.
fn default_archive(arch: &str) -> &'static str {
    match arch {
        "amd64" | "i386" => "http://archive.ubuntu.com/ubuntu",
        _ => "http://ports.ubuntu.com/ubuntu-ports",
    }
}

pub fn fragment(m: &Machine) -> Value {
    let (url, sources) = match &m.archive {
        Some(a) => (a.url.trim_end_matches('/').to_string(), a.enable_sources),
        None => (default_archive(m.arch()).to_string(), false),
    };
    let mut list = String::new();
    for p in POCKETS {
        list.push_str(&format!("deb {url} $RELEASE{p} {COMPONENTS}\n"));
        let src = format!("deb-src {url} $RELEASE{p} {COMPONENTS}\n");
        if sources {
            list.push_str(&src);
        } else {
            list.push_str(&format!("# {src}"));
        }
    }
    let mut apt = Mapping::new();
    apt.insert("preserve_sources_list".into(), false.into());
    apt.insert("sources_list".into(), list.into());
    if let Some(p) = &m.http_proxy {
        apt.insert("proxy".into(), p.clone().into());
    }
    let mut out = Mapping::new();
    out.insert("apt".into(), Value::Mapping(apt));
    Value::Mapping(out)
}
