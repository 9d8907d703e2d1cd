//! The plan text: each stage in the config's order, and what it would do.

use preseed::commands::Command;
use preseed::network::{Body, Entry, Network};
use preseed::storage::{Item, Ptable, Storage};
use preseed::Config;
use yaml_serde::Value;

use super::disk::{self, human, Target, TargetKind};
use crate::block_meta::custom::describe_layer;
use crate::block_meta::disk::FoundDisk;
use crate::block_meta::partition::{self, DoesNotFit, Kind};

pub fn plan(c: &Config, target: Option<&Target>) -> Vec<String> {
    let mut out = vec!["plan (a dry run: nothing is written, partitioned or mounted)".to_string()];
    match target {
        Some(t) => out.push(format!("target disk: {}", t.describe())),
        None => out.push("target disk: as the config identifies it (no --target)".into()),
    }
    if c.stages.is_empty() {
        out.push("no stages: the install would do nothing".into());
    }
    for stage in &c.stages {
        out.push(format!(
            "stage {stage}: {}",
            crate::install::stage_description(stage)
        ));
        let cmds = c.stage_commands(stage);
        let mut any = false;
        for (key, cmd) in &cmds {
            match cmd {
                None if key == "builtin" && matches!(stage.as_str(), "early" | "late") => {}
                None => {
                    out.push(format!("  {key}: disabled (null), skipped"));
                    any = true;
                }
                Some(Command::Exec(words))
                    if key == "builtin" && words.first().is_some_and(|w| w == "curtin") =>
                {
                    let sub = words.get(1).map(String::as_str).unwrap_or("");
                    out.push(format!("  builtin: curtin {}", words[1..].join(" ")));
                    builtin(sub, c, target, &mut out);
                    any = true;
                }
                Some(cmd) => {
                    let how = match cmd {
                        Command::Shell(_) => "sh -c",
                        Command::Exec(_) => "exec",
                    };
                    out.push(format!("  run {key} ({how}): {}", cmd.display()));
                    any = true;
                }
            }
        }
        if !any {
            out.push("  nothing to run".into());
        }
    }
    out.push("after the stages:".into());
    out.push(if c.install.unmount_disabled() {
        "  the target stays mounted (install.unmount: disabled)".into()
    } else {
        "  unmount the target".into()
    });
    for (name, h) in &c.reporting {
        out.push(format!(
            "  report events to {name}: {:?}{}{}",
            h.kind,
            h.endpoint
                .as_deref()
                .map(|e| format!(" {e}"))
                .unwrap_or_default(),
            if h.oauth().is_some() {
                " (OAuth 1.0)"
            } else {
                ""
            }
        ));
    }
    if let Some(p) = &c.power_state {
        out.push(format!(
            "  power state: {:?} after {}",
            p.mode,
            p.delay.as_deref().unwrap_or("5")
        ));
    }
    out
}

fn builtin(sub: &str, c: &Config, t: Option<&Target>, out: &mut Vec<String>) {
    match sub {
        "block-meta" => partitioning(c, t, out),
        "net-meta" => network(c.network.as_ref(), out),
        "extract" => extract(c, out),
        "curthooks" => curthooks(c, out),
        "hook" => {
            out.push("    run the image's /curtin/finalize in the target, if it has one".into())
        }
        other => out.push(format!("    (curtin {other}: not a stage deployer plans)")),
    }
}

fn partitioning(c: &Config, t: Option<&Target>, out: &mut Vec<String>) {
    if let Some(dd) = c.dd_source() {
        let disk = match t {
            Some(t) => format!("--target {}", t.path.display()),
            None => simple_disk(c),
        };
        out.push(format!(
            "    simple mode (dd image): stream {} {} onto {disk}, then mount its root partition",
            dd.kind, dd.uri
        ));
        checks(dd, out);
        match c.block_meta.grow_root {
            false => out.push(
                "    the root is not grown (block-meta.grow_root: false): the image's layout is kept"
                    .into(),
            ),
            _ => out.push("    the GPT backup header is moved to the end of the disk and the root grown to fill it".into()),
        }
        match (&c.storage, t) {
            (Some(s), _) => {
                out.push("    the storage layout is not applied to a dd image (only its grub_device disk is used, by serial or path)".into());
                clear_holders_lines(s, t, out);
            }
            (None, Some(t)) => out.extend(crate::block_meta::clear_holders::describe(
                &[("target".into(), t.path.clone())],
                std::path::Path::new("/target"),
            )),
            (None, None) => {}
        }
        return;
    }
    let Some(s) = &c.storage else {
        let disk = match t {
            Some(t) => format!("--target {}", t.path.display()),
            None => "the first installable disk (by name)".into(),
        };
        out.push(format!(
            "    simple mode: a root partition (ext4, label cloudimg-rootfs) on {disk}; table from block-meta.format or the firmware (uefi: ESP 15 + root 1, else mbr)"
        ));
        return;
    };
    out.push(format!(
        "    custom mode: storage config version {}, {} items, in list order",
        s.version,
        s.config.len()
    ));
    if let Err(m) = s.check_supported() {
        out.push(format!("    an install would stop here: {m}"));
    }
    clear_holders_lines(s, t, out);
    // --target stands for the boot disk (grub_device), else the first disk.
    let target_disk = s
        .disks()
        .find(|d| d.grub_device)
        .or_else(|| s.disks().next())
        .map(|d| d.id.clone());
    for item in &s.config {
        match item {
            Item::Disk(d) => {
                let on_target = t.filter(|_| Some(&d.id) == target_disk.as_ref());
                let whereis = match on_target {
                    Some(t) => format!("--target {}", t.path.display()),
                    None => disk::resolve(d),
                };
                let mut attrs = vec![format!(
                    "ptable {}",
                    d.ptable
                        .map(ptable_name)
                        .unwrap_or("none (no table written)")
                )];
                attrs.extend(d.wipe.map(|w| format!("wipe {}", w.name())));
                if d.preserve {
                    attrs.push("preserve (verify the table, write nothing)".into());
                }
                if d.grub_device {
                    attrs.push("grub_device".into());
                }
                out.push(format!(
                    "    disk {}: {whereis}; {}",
                    d.id,
                    attrs.join(", ")
                ));
                partitions(s, d, on_target, out);
            }
            Item::Partition(_) => {} // listed under their disk
            Item::Format(f) => out.push(format!(
                "    format {}: {} on {}{}{}",
                f.id,
                f.fstype.name(),
                f.volume,
                f.label
                    .as_deref()
                    .map(|l| format!(", label {l}"))
                    .unwrap_or_default(),
                if f.preserve {
                    " (preserve: keep the existing filesystem)"
                } else {
                    ""
                }
            )),
            Item::Mount(m) => {
                let fstype = m.fstype.clone().or_else(|| {
                    let f = m.device.as_deref().and_then(|d| s.get(d))?;
                    match f {
                        Item::Format(f) => Some(f.fstype.mount_type().to_string()),
                        _ => None,
                    }
                });
                let path = m.path.as_deref().unwrap_or("none");
                let what = m.device.as_deref().or(m.spec.as_deref()).unwrap_or("?");
                out.push(format!(
                    "    mount {}: {what} ({}) at {}, options {}{}",
                    m.id,
                    fstype.as_deref().unwrap_or("auto"),
                    if path == "none" {
                        "none (fstab only)"
                    } else {
                        path
                    },
                    m.options
                        .as_deref()
                        .filter(|o| !o.is_empty())
                        .unwrap_or("defaults"),
                    if fstype.as_deref() == Some("swap") {
                        ", swap: in fstab, not mounted"
                    } else {
                        ""
                    }
                ));
            }
            other => match (other.unsupported(), describe_layer(s, other)) {
                (None, Some(line)) => {
                    out.push(format!("    {line}"));
                    layer_partitions(s, other, out);
                }
                (why, _) => out.push(format!(
                    "    {} {}: {}",
                    other.type_name(),
                    other.id(),
                    why.unwrap_or_default()
                )),
            },
        }
    }
}

/// Partitions of an array or bcache device: placed once it exists (its size is known then).
fn layer_partitions(s: &Storage, item: &Item, out: &mut Vec<String>) {
    for p in s.partitions_of(item.id()) {
        out.push(format!(
            "      partition {} {}: {} bytes{}, placed when {} exists",
            p.number.map(|n| n.to_string()).unwrap_or_default(),
            p.id,
            p.size,
            p.flag
                .map(|f| format!(" (flag {})", f.name()))
                .unwrap_or_default(),
            item.id()
        ));
    }
}

/// clear-holders on the disks the config names (not preserved), as this machine has them now.
fn clear_holders_lines(s: &Storage, t: Option<&Target>, out: &mut Vec<String>) {
    let target_disk = s
        .disks()
        .find(|d| d.grub_device)
        .or_else(|| s.disks().next())
        .map(|d| d.id.clone());
    let mut disks = Vec::new();
    for d in s.disks().filter(|d| !d.preserve) {
        let path = match t {
            Some(t) if Some(&d.id) == target_disk.as_ref() => Some(t.path.clone()),
            _ => crate::block_meta::disk::find(d).ok(),
        };
        match path {
            Some(p) => disks.push((d.id.clone(), p)),
            None => out.push(format!(
                "    clear-holders: disk {} is not on this machine; its holders are read at install",
                d.id
            )),
        }
    }
    if !disks.is_empty() {
        out.extend(crate::block_meta::clear_holders::describe(
            &disks,
            std::path::Path::new("/target"),
        ));
    }
}

/// The disk block-meta would place partitions on: `--target`, else the config's disk as this
/// machine has it; its size is unknown when neither exists (a plan for another machine).
fn plan_disk(d: &preseed::storage::Disk, t: Option<&Target>) -> (FoundDisk, bool) {
    let unknown = |path: std::path::PathBuf, sector: u64| {
        // Big enough that nothing is refused for size; the lines say the size is unknown.
        let size = (1u64 << 60) / sector * sector;
        (FoundDisk { path, sector, size }, false)
    };
    match t {
        Some(Target {
            path,
            size: Some(size),
            lbs,
            ..
        }) => (
            FoundDisk {
                path: path.clone(),
                sector: *lbs,
                size: *size,
            },
            true,
        ),
        Some(t) => unknown(t.path.clone(), t.lbs),
        None => match crate::block_meta::disk::find(d).and_then(|p| FoundDisk::open(&p)) {
            Ok(found) => (found, true),
            Err(_) => unknown(d.path.clone().unwrap_or_default().into(), 512),
        },
    }
}

/// The partitions of a disk as block-meta places them ([`partition::place`]).
fn partitions(s: &Storage, d: &preseed::storage::Disk, t: Option<&Target>, out: &mut Vec<String>) {
    let mine: Vec<&preseed::storage::Partition> = s.partitions_of(&d.id).collect();
    if mine.is_empty() {
        return;
    }
    let (found, sized) = plan_disk(d, t);
    let lbs = found.sector;
    let placed = crate::block_meta::custom::table_kind(&d.id, d.ptable)
        .and_then(|pt| partition::place(&found, &d.id, pt, &mine, s.version))
        .map(|mut p| {
            crate::block_meta::custom::v2_attributes(s, &mut p, &mine);
            p
        });
    let ptable = d.ptable.unwrap_or(Ptable::Gpt);
    let gpt = ptable == Ptable::Gpt;
    let placed = match placed {
        Ok(p) => p,
        Err(e) => {
            match e.downcast_ref::<DoesNotFit>() {
                // Where the room went: the partitions placed before the one that does not fit.
                Some(dnf) => {
                    placed_lines(&dnf.placed, &mine, gpt, sized, lbs, out);
                    out.push(format!("      DOES NOT FIT: {e}"));
                }
                None => out.push(format!("      an install would stop here: {e}")),
            }
            return;
        }
    };
    placed_lines(&placed, &mine, gpt, sized, lbs, out);
    let end = placed
        .iter()
        .filter(|p| {
            !(p.kind == Kind::Logical
                || (!sized && mine.iter().any(|m| m.id == p.id && m.size == 0)))
        })
        .map(|p| p.end())
        .max()
        .unwrap_or(0);
    // GPT keeps its backup table and header at the end.
    let need = (end + if gpt { 16384u64.div_ceil(lbs) + 1 } else { 0 }) * lbs;
    match t {
        Some(t) if t.kind == TargetKind::Missing => out.push(format!(
            "      the image file would be created; it needs at least {} ({need} bytes)",
            human(need)
        )),
        _ if sized => out.push(format!(
            "      fits: the layout uses {} of {}",
            human(need),
            human(found.size)
        )),
        _ => out.push(format!(
            "      the layout needs {} ({need} bytes)",
            human(need)
        )),
    }
}

/// One line per placed partition: number, id, start, size, type.
fn placed_lines(
    placed: &[partition::Placed],
    mine: &[&preseed::storage::Partition],
    gpt: bool,
    sized: bool,
    lbs: u64,
    out: &mut Vec<String>,
) {
    for (p, asked) in placed.iter().zip(mine) {
        let ty = if let Some(t) = &p.type_code {
            format!("type {t} (partition_type)")
        } else if gpt {
            format!("type {}", partition::gpt_type(p.flag).0)
        } else {
            let (sys, boot) = partition::mbr_type(p.flag);
            format!(
                "{} type 0x{sys:02x}{}",
                match p.kind {
                    Kind::Primary => "primary",
                    Kind::Extended => "extended",
                    Kind::Logical => "logical",
                },
                if boot { ", boot flag" } else { "" }
            )
        };
        let mut flag = p
            .flag
            .map(|f| format!(" (flag {})", f.name()))
            .unwrap_or_default();
        if p.attrs != 0 {
            flag.push_str(&format!(", GPT attributes 0x{:016x}", p.attrs));
        }
        let size = if asked.size == 0 && !sized {
            "the rest of the disk".to_string()
        } else {
            format!("{} ({} bytes)", human(p.len * lbs), p.len * lbs)
        };
        out.push(format!(
            "      partition {} {}: start {} (sector {}), size {size}, {ty}{flag}",
            p.number,
            p.id,
            p.start * lbs,
            p.start,
        ));
    }
}

fn ptable_name(p: Ptable) -> &'static str {
    match p {
        Ptable::Gpt => "gpt",
        Ptable::Msdos => "msdos",
        Ptable::Vtoc => "vtoc",
        Ptable::Unsupported => "unsupported",
    }
}

/// simple mode's disk choice ([`crate::block_meta::simple::choose_disk`]): `block-meta.devices`,
/// else the grub_device disk (by serial or path), else the first installable.
fn simple_disk(c: &Config) -> String {
    if let Some(d) = c.block_meta.devices.first() {
        return d.to_string();
    }
    let d = c.storage.as_ref().and_then(|s| {
        s.disks()
            .find(|d| d.grub_device && (d.serial.is_some() || d.path.is_some()))
    });
    match d {
        Some(d) => format!("disk {} ({})", d.id, disk::resolve(d)),
        None => "the first installable disk (by name)".into(),
    }
}

fn checks(s: &preseed::sources::Source, out: &mut Vec<String>) {
    let mut c = Vec::new();
    if let Some(h) = &s.sha256 {
        c.push(format!("sha256 {h}"));
    }
    if let Some(h) = &s.sha512 {
        c.push(format!("sha512 {}...", &h[..16]));
    }
    if let Some(n) = s.size {
        c.push(format!("size {n} bytes"));
    }
    if !c.is_empty() {
        out.push(format!("    verified against {}", c.join(", ")));
    }
}

fn network(n: Option<&Network>, out: &mut Vec<String>) {
    match n.map(|n| (&n.body, n)) {
        Some((Body::V1(entries), _)) => {
            let names: Vec<String> = entries.iter().map(entry_name).collect();
            out.push(format!(
                "    network config version 1 from the config: {}",
                names.join(", ")
            ));
        }
        Some((Body::V2, n)) => {
            // Version 2 is passed through unparsed: its sections are what there is to show.
            let kinds: Vec<String> = n
                .raw
                .as_mapping()
                .into_iter()
                .flatten()
                .filter_map(|(k, v)| {
                    let k = k.as_str()?;
                    let m = v.as_mapping()?;
                    Some(format!(
                        "{k}: {}",
                        m.keys().filter_map(Value::as_str).collect::<Vec<_>>().join(", ")
                    ))
                })
                .collect();
            out.push(format!(
                "    network config version 2 from the config, passed through: {}",
                kinds.join("; ")
            ));
        }
        Some((Body::Disabled, _)) => {
            out.push("    network config disabled (`config: disabled`): cloud-init leaves it alone".into())
        }
        None => out.push("    no network config: mode auto falls back to the running system's (curtin: copy or dhcp)".into()),
    }
    out.push("    written for curthooks to render into the target".into());
}

/// `type name` of a v1 entry, as the config names it.
fn entry_name(e: &Entry) -> String {
    let (kind, i) = match e {
        Entry::Physical(i) => ("physical", i),
        Entry::Loopback(i) => ("loopback", i),
        Entry::Infiniband(i) => ("infiniband", i),
        Entry::Bond(i) => ("bond", i),
        Entry::Bridge(i) => ("bridge", i),
        Entry::Vlan(i) => ("vlan", i),
        Entry::Nameserver(_) => return "nameserver".into(),
        Entry::Route(_) => return "route".into(),
    };
    let name = if i.name.is_empty() {
        i.id.as_deref().unwrap_or("")
    } else {
        &i.name
    };
    format!("{kind} {name}").trim_end().to_string()
}

fn extract(c: &Config, out: &mut Vec<String>) {
    let mut n = 0;
    for s in c.sources_sorted() {
        n += 1;
        if s.kind.is_dd() {
            out.push(format!(
                "    source {}: {} {} (written during partitioning)",
                s.name, s.kind, s.uri
            ));
            continue;
        }
        let how = if crate::extract::fsimage::is_copied(s) {
            crate::extract::fsimage::describe(s)
        } else {
            "extracted into the target root (owners, modes, xattrs, devices kept)".to_string()
        };
        out.push(format!(
            "    source {}: {} {} -> {how}",
            s.name, s.kind, s.uri
        ));
        checks(s, out);
    }
    if n == 0 {
        out.push("    no sources: nothing to extract (an install needs one)".into());
    }
    for (name, w) in &c.write_files {
        out.push(format!(
            "    write_files {name}: {} ({} bytes, mode {:04o}{})",
            w.path,
            w.content.len(),
            w.permissions,
            w.owner
                .as_deref()
                .map(|o| format!(", owner {o}"))
                .unwrap_or_default()
        ));
    }
    if let Some(p) = &c.install.save_install_config {
        out.push(format!("    save the merged config to {p} (mode 0400)"));
    }
}

fn curthooks(c: &Config, out: &mut Vec<String>) {
    use preseed::install::CurthooksMode;
    out.push(match c.curthooks.mode {
        CurthooksMode::Auto => {
            "    mode auto: the image's /curtin/curtin-hooks if it has one, else the builtin hooks"
                .into()
        }
        CurthooksMode::Builtin => {
            "    mode builtin: the builtin hooks, even if the image has its own".into()
        }
        CurthooksMode::Target => {
            "    mode target: the image's /curtin/curtin-hooks (an error if it has none)".into()
        }
    });
    if c.storage.is_some() && c.dd_source().is_none() {
        out.push("    write /etc/fstab from the mounts".into());
    }
    if c.network.is_some() {
        out.push("    network config into etc/cloud/cloud.cfg.d/50-curtin-networking.cfg".into());
    }
    for name in c.cloudconfig.keys() {
        out.push(format!(
            "    cloudconfig {name}: etc/cloud/cloud.cfg.d/95-cloudconfig-{name}.cfg"
        ));
    }
    if let Some(s) = &c.storage {
        let grub: Vec<&str> = s
            .config
            .iter()
            .filter_map(|i| match i {
                Item::Disk(d) if d.grub_device => Some(d.id.as_str()),
                Item::Partition(p) if p.grub_device => Some(p.id.as_str()),
                _ => None,
            })
            .collect();
        if !grub.is_empty() {
            out.push(format!("    bootloader on {}", grub.join(", ")));
        }
    }
    out.push(format!(
        "    {}",
        crate::curthooks::swap::describe(c.swap.as_ref())
    ));
}
