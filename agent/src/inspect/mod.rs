//! `deployer inspect IMAGE`: tell an image builder, before the upload, whether MAAS will deploy
//! the image. Read-only always: the image is streamed (a tarball once, never extracted; a dd
//! image onto a read-only loop device, see [`dd`]) and every finding is a line with a verdict.
//!
//! - [`format`]: the real format, the MAAS filetype for it, the declared one checked;
//! - [`dd`]: partitions, filesystems, root (curtin's rule, our fallback), growth, firmware;
//! - [`tarball`]: a root tarball indexed in one pass;
//! - [`os`]: os-release and the base image, cloud-init, netplan, datasources, kernel, grub;
//! - [`hooks`]: `/curtin/{curtin-hooks,finalize,network-config}` and their curtin imports;
//! - [`report`]: verdicts, the text and the JSON document (`deployer-inspect/1`).
//!
//! Exit codes: 0 MAAS would deploy it, 1 warnings only, 2 an error would stop a deployment;
//! an image that cannot be read at all is an ordinary failure (4 source, 5 storage, 3 other).

pub mod dd;
pub mod format;
pub mod hooks;
pub mod os;
pub mod report;
pub mod tarball;
pub mod tree;

use std::io::Write;

use anyhow::{Context, Result};

use crate::cli::{Global, InspectArgs};
use crate::error::{Kind, KindExt};
use crate::source::{self, detect, FetchOptions};
use format::{Format, Layout};
use report::Report;

/// What to inspect, and against what.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// A path, `file://`, `http(s)://` URL; a curtin type prefix (`dd-gz:`) counts as the
    /// declared filetype.
    pub image: String,
    pub filetype: Option<String>,
    pub base_image: Option<String>,
    pub fetch: FetchOptions,
}

/// `deployer inspect`.
pub fn run(g: &Global, a: &InspectArgs) -> Result<()> {
    let mut opts = Options {
        image: a.image.clone(),
        filetype: a.filetype.clone(),
        base_image: a.base_image.clone(),
        fetch: FetchOptions::default(),
    };
    if !g.config.is_empty() || !g.set.is_empty() {
        opts.fetch.proxy = crate::config::load(g)?.config.proxy.clone();
    }
    let r = inspect(&opts)?;
    let mut out = std::io::stdout().lock();
    if a.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&r)?)?;
    } else {
        write!(out, "{}", r.text())?;
    }
    out.flush()?;
    drop(out);
    if r.exit_code != 0 {
        // Everything inspect attached or mounted is released by now.
        std::process::exit(r.exit_code);
    }
    Ok(())
}

/// Inspect an image; the report carries the verdict.
pub fn inspect(opts: &Options) -> Result<Report> {
    let (prefixed, uri) = crate::source::kind::split_dd(&opts.image);
    let declared = opts
        .filetype
        .clone()
        .or_else(|| prefixed.map(format::filetype_of));
    let mut r = Report::new(uri);
    let base = os::Base::resolve(&mut r, opts.base_image.as_deref());

    let opened = source::open(uri, &opts.fetch)
        .with_context(|| format!("opening the image {uri}"))
        .kind(Kind::Source)?;
    let (compression, mut decoded) =
        source::decode::decompressed(opened.reader).kind(Kind::Source)?;
    let head = decoded
        .peek(4608)
        .context("decoding the start of the image")
        .kind(Kind::Source)?
        .to_vec();
    let mut root = None;
    let layout = if detect::is_tar(&head) {
        match tarball::scan(&mut decoded) {
            Ok(tarball::Scan::DiskInTar(name)) => {
                tracing::info!("the tar archive's first file {name} is a disk image");
                Layout::DiskInTar
            }
            Ok(tarball::Scan::Root(t)) => {
                root = Some(t);
                // The archive's padding and the compressed stream's end: its checksum covers
                // every byte, and garbage after it fails curtin's tar.
                if let Err(e) = std::io::copy(&mut decoded, &mut std::io::sink()) {
                    r.error(
                        "format",
                        format!(
                            "the {} stream after the tar archive: {e}",
                            compression.name()
                        ),
                    );
                }
                Layout::RootTarball
            }
            Err(e) => {
                r.error(
                    "format",
                    format!(
                        "a {} tar archive that cannot be read to its end: {}",
                        compression.name(),
                        crate::error::render(&e)
                    ),
                );
                r.finish();
                return Ok(r);
            }
        }
    } else if format::has_partition_table(&head) {
        Layout::Disk
    } else {
        Layout::Unknown
    };
    drop(decoded);
    let fmt = Format {
        compression,
        layout,
    };
    format::report(&mut r, fmt, declared.as_deref());

    let mut curtin_hooks = false;
    match layout {
        Layout::Disk | Layout::DiskInTar if fmt.source_type().is_some() => {
            dd::inspect(&mut r, uri, fmt, &base, &opts.fetch)?;
            curtin_hooks = r.facts.hooks.iter().any(|h| h.name == "curtin-hooks");
        }
        Layout::RootTarball => {
            let t = root.expect("scanned");
            curtin_hooks = hooks::has_curthooks(&t);
            if os::check(&mut r, &t, &base, curtin_hooks) {
                os::builtin_bootloader(&mut r, &t, curtin_hooks);
            }
            hooks::check(&mut r, &t);
            tracing::debug!("{} tar entries read", t.entries);
        }
        _ => {}
    }
    if let Some(t) = fmt.source_type() {
        r.plan = plan(&r, t, uri, &base, curtin_hooks);
    }
    r.finish();
    Ok(r)
}

/// What an install of MAAS's config for this image does, as `deployer plan` says it: the
/// source as MAAS passes it, MAAS's net-meta mode and custom-image late commands; then which
/// of the image's hooks run.
fn plan(
    r: &Report,
    t: source::SourceType,
    uri: &str,
    base: &os::Base,
    curtin_hooks: bool,
) -> Vec<String> {
    let src = preseed::generate::source_string(t.prefix(), uri);
    let mut late = yaml_serde::Mapping::new();
    for (k, v) in preseed::generate::template::validation_commands(&base.os) {
        late.insert(k.into(), v);
    }
    let mut cfg = yaml_serde::Mapping::new();
    let mut sources = yaml_serde::Mapping::new();
    sources.insert("00_cmdline".into(), src.into());
    cfg.insert("sources".into(), sources.into());
    cfg.insert(
        "network_commands".into(),
        yaml_serde::from_str("{builtin: [curtin, net-meta, custom]}").expect("yaml"),
    );
    cfg.insert("late_commands".into(), late.into());
    let text = preseed::yaml::to_string(&cfg).expect("yaml");
    let mut lines = match preseed::load::load_documents(vec![("inspect".into(), text)]) {
        Ok(l) => crate::plan::lines(&l.config)
            .into_iter()
            .filter(|l| !l.starts_with("plan (") && !l.starts_with("target disk:"))
            // MAAS sends the machine's network; this config has none.
            .filter(|l| !l.trim_start().starts_with("no network config:"))
            .collect(),
        Err(e) => vec![format!("(no plan: {e})")],
    };
    lines.push("with this image:".into());
    lines.push(match base.network() {
        preseed::generate::network::Version::V1 => format!(
            "  network: MAAS sends the machine's network as version 1 (a {} base)",
            base.os
        ),
        _ => "  network: MAAS sends the machine's network as version 2 (an Ubuntu base), passed to the image's cloud-init".into(),
    });
    let hook = |name: &str| r.facts.hooks.iter().find(|h| h.name == name);
    lines.push(match hook("curtin-hooks") {
        Some(h) if curtin_hooks => format!(
            "  curthooks: the image's /curtin/curtin-hooks ({}) runs instead of the builtin hooks",
            h.interpreter.as_deref().unwrap_or("?")
        ),
        _ => "  curthooks: the builtin hooks run (the image has no /curtin/curtin-hooks)".into(),
    });
    if let Some(h) = hook("finalize") {
        lines.push(format!(
            "  hook: the image's /curtin/finalize ({}) runs",
            h.interpreter.as_deref().unwrap_or("?")
        ));
    }
    if let Some(h) = hook("network-config") {
        lines.push(format!(
            "  network: the image's /curtin/network-config ({}) runs instead of net-meta",
            h.interpreter.as_deref().unwrap_or("?")
        ));
    }
    lines
}
