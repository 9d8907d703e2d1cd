//! clear-holders (curtin `block/clear_holders.py`): before a disk is partitioned again, what
//! an earlier deployment built on it is taken apart, from the top of each holder tree down:
//! the target's mounts, swap, logical volumes then their volume groups and physical volumes,
//! crypt mappings, md arrays, bcache devices and cache sets, then every signature (wipefs).
//!
//! The trees are read from sysfs (`holders/`, partitions, `slaves/`, `dm/uuid`): a device's
//! holders are the devices in its `holders/` and its partitions. The order is curtin's: each
//! device gets a level (how much of the tree hangs below it; a device reached twice gets the
//! higher), and devices are taken apart by descending level, then by type (crypt, raid, lvm,
//! bcache, partition, disk).
//!
//! Nothing outside the named disks is touched: a layer that also stands on a disk the config
//! does not name, or a mount outside the target, stops the install before anything is undone,
//! with an error naming both.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::sysblock::{split_lvm_name, Kind, Sysfs};
use crate::tools::{self, bcache, cryptsetup, lvm, mdadm};

/// One device of a holder tree and what is built on it.
#[derive(Debug, Clone)]
pub struct Node {
    pub name: String,
    pub kind: Kind,
    pub holders: Vec<Node>,
}

/// The tree above `name`: its holders and its partitions, recursively.
pub fn tree(sys: &Sysfs, name: &str) -> Node {
    let mut above = sys.holders(name);
    above.extend(sys.partitions(name));
    Node {
        name: name.to_string(),
        kind: sys.kind(name),
        holders: above.iter().map(|h| tree(sys, h)).collect(),
    }
}

impl Node {
    /// `tree --charset=ascii` style, as curtin logs it.
    pub fn render(&self) -> Vec<String> {
        let mut out = vec![format!("{} ({})", self.name, self.kind.name())];
        let n = self.holders.len();
        for (i, h) in self.holders.iter().enumerate() {
            let last = i + 1 == n;
            for (j, line) in h.render().into_iter().enumerate() {
                let lead = match (j, last) {
                    (0, true) => "`-- ",
                    (0, false) => "|-- ",
                    (_, true) => "    ",
                    (_, false) => "|   ",
                };
                out.push(format!("{lead}{line}"));
            }
        }
        out
    }

    fn walk<'a>(&'a self, out: &mut Vec<&'a Node>) {
        out.push(self);
        for h in &self.holders {
            h.walk(out);
        }
    }
}

/// What the running system says about devices, beyond sysfs: mounts, swap, LVM membership.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    /// (kernel name, mount point).
    pub mounts: Vec<(String, PathBuf)>,
    /// Kernel names of active swap areas.
    pub swaps: Vec<String>,
    /// (physical volume kernel name, volume group), from `pvs`.
    pub pvs: Vec<(String, String)>,
}

impl Facts {
    /// Read the mount table and swap areas (crate::mounts), and `pvs` when `lvm` (LVM may be on the disks
    /// and is installed).
    pub fn gather(sys: &Sysfs, lvm: bool) -> Facts {
        let by_num = |num: &str| -> Option<String> {
            let real = std::fs::canonicalize(sys.root().join("dev/block").join(num)).ok()?;
            Some(real.file_name()?.to_string_lossy().into_owned())
        };
        let mut f = Facts::default();
        for m in crate::mounts::table() {
            if let Some(name) = by_num(&m.dev) {
                f.mounts.push((name, m.point));
            }
        }
        for dev in crate::mounts::swaps() {
            if let Ok(n) = sys.kname_of(&dev) {
                f.swaps.push(n);
            }
        }
        if lvm && tools::which("lvm").is_some() {
            match lvm::report("pvs", &["pv_name", "vg_name"]) {
                Ok(rows) => {
                    for r in rows {
                        let (pv, vg) = (r.get("pv_name"), r.get("vg_name"));
                        if let (Some(pv), Some(vg)) = (pv, vg.filter(|v| !v.is_empty())) {
                            if let Ok(n) = sys.kname_of(Path::new(pv)) {
                                f.pvs.push((n, vg.clone()));
                            }
                        }
                    }
                }
                Err(e) => tracing::debug!("pvs: {e:#}"),
            }
        }
        f
    }
}

/// One step of taking an earlier deployment apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Unmount {
        dev: String,
        point: PathBuf,
    },
    Swapoff {
        dev: String,
    },
    RemoveLv {
        dev: String,
        vg: String,
        lv: String,
    },
    /// `vgremove`, then `pvremove` of its physical volumes.
    RemoveVg {
        vg: String,
        pvs: Vec<String>,
    },
    CloseCrypt {
        dev: String,
        name: String,
    },
    /// `mdadm --stop`, then the members' superblocks zeroed.
    StopRaid {
        dev: String,
        members: Vec<String>,
    },
    StopBcache {
        dev: String,
    },
    StopCacheSet {
        cset: String,
    },
    /// `wipefs --all`.
    Wipe {
        dev: String,
    },
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Unmount { dev, point } => {
                write!(f, "unmount /dev/{dev} from {}", point.display())
            }
            Action::Swapoff { dev } => write!(f, "swapoff /dev/{dev}"),
            Action::RemoveLv { dev, vg, lv } => {
                write!(f, "lvremove {vg}/{lv} (/dev/{dev})")
            }
            Action::RemoveVg { vg, pvs } => write!(
                f,
                "vgremove {vg}, pvremove {}",
                pvs.iter()
                    .map(|p| format!("/dev/{p}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
            Action::CloseCrypt { dev, name } => {
                write!(f, "cryptsetup close {name} (/dev/{dev})")
            }
            Action::StopRaid { dev, members } => write!(
                f,
                "mdadm --stop /dev/{dev}, zero the md superblock of {}",
                members
                    .iter()
                    .map(|p| format!("/dev/{p}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
            Action::StopBcache { dev } => write!(f, "stop bcache device /dev/{dev}"),
            Action::StopCacheSet { cset } => write!(f, "stop bcache cache set {cset}"),
            Action::Wipe { dev } => write!(f, "wipefs --all /dev/{dev}"),
        }
    }
}

/// What clear-holders will do on the named disks.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub trees: Vec<Node>,
    pub actions: Vec<Action>,
}

impl Plan {
    /// Only signatures to wipe: nothing was built on the disks.
    pub fn is_trivial(&self) -> bool {
        self.actions
            .iter()
            .all(|a| matches!(a, Action::Wipe { .. }))
    }
}

/// curtin's `plan_shutdown_holder_trees`: (level, type order) for every device, highest first.
fn order(trees: &[Node]) -> Vec<(String, Kind)> {
    fn height(n: &Node) -> usize {
        if n.holders.is_empty() {
            0
        } else {
            1 + n.holders.iter().map(height).sum::<usize>()
        }
    }
    fn flatten(n: &Node, level: usize, reg: &mut BTreeMap<String, (usize, Kind)>) {
        let level = match reg.get(&n.name) {
            Some((l, _)) => (*l).max(level) + 1,
            None => height(n).max(level),
        };
        reg.insert(n.name.clone(), (level, n.kind));
        for h in &n.holders {
            flatten(h, level + 1, reg);
        }
    }
    let mut sorted: Vec<&Node> = trees.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    let mut reg = BTreeMap::new();
    for t in sorted {
        flatten(t, 0, &mut reg);
    }
    let type_order = |k: Kind| match k {
        Kind::Disk => 1,
        Kind::Partition => 2,
        Kind::Bcache => 3,
        Kind::Lvm => 4,
        Kind::Raid => 5,
        Kind::Crypt | Kind::OtherDm => 6,
    };
    let mut v: Vec<(String, usize, Kind)> = reg.into_iter().map(|(n, (l, k))| (n, l, k)).collect();
    v.sort_by(|a, b| {
        (b.1, type_order(b.2))
            .cmp(&(a.1, type_order(a.2)))
            .then(b.0.cmp(&a.0))
    });
    v.into_iter().map(|(n, _, k)| (n, k)).collect()
}

/// Plan clear-holders for `disks` (config id, kernel name) with `target` as the install's
/// mount point. Errors, before anything is done: a layer that also stands on a disk outside
/// `disks`, a mount outside the target, a device-mapper device that is neither LVM nor crypt.
pub fn plan(sys: &Sysfs, disks: &[(String, String)], target: &Path, facts: &Facts) -> Result<Plan> {
    let named: BTreeSet<&str> = disks.iter().map(|(_, k)| k.as_str()).collect();
    let id_of = |kname: &str| -> String {
        disks
            .iter()
            .find(|(_, k)| k == kname)
            .map(|(id, k)| format!("disk '{id}' (/dev/{k})"))
            .unwrap_or_else(|| format!("/dev/{kname}"))
    };
    let trees: Vec<Node> = disks.iter().map(|(_, k)| tree(sys, k)).collect();
    let mut unmounts = Vec::new();
    let mut swapoffs = Vec::new();
    // Where each device was found, for messages.
    let mut found_on: BTreeMap<String, String> = BTreeMap::new();
    for t in &trees {
        let mut all = Vec::new();
        t.walk(&mut all);
        for n in all {
            found_on.entry(n.name.clone()).or_insert(t.name.clone());
            for (dev, point) in facts.mounts.iter().filter(|(d, _)| *d == n.name) {
                if !point.starts_with(target) {
                    bail!(
                        "/dev/{dev} (on {}) is mounted at {}, outside the target {}: refusing to take it apart",
                        id_of(&t.name),
                        point.display(),
                        target.display()
                    );
                }
                let a = Action::Unmount {
                    dev: dev.clone(),
                    point: point.clone(),
                };
                if !unmounts.contains(&a) {
                    unmounts.push(a);
                }
            }
            if facts.swaps.contains(&n.name) {
                let a = Action::Swapoff {
                    dev: n.name.clone(),
                };
                if !swapoffs.contains(&a) {
                    swapoffs.push(a);
                }
            }
        }
    }
    // Deepest mount point first.
    unmounts.sort_by_key(|a| match a {
        Action::Unmount { point, .. } => std::cmp::Reverse(point.components().count()),
        _ => std::cmp::Reverse(0),
    });
    let mut actions: Vec<Action> = unmounts;
    actions.extend(swapoffs);

    let spans = |what: String, on: &str, bases: &[String]| -> Result<()> {
        if let Some(other) = bases.iter().find(|b| !named.contains(b.as_str())) {
            bail!(
                "{what} on {} also uses /dev/{other}, a disk the storage config does not name: refusing to take it apart (add that disk to the config, or stop {what} first)",
                id_of(on),
            );
        }
        Ok(())
    };
    let vg_pvs = |vg: &str| -> Vec<String> {
        facts
            .pvs
            .iter()
            .filter(|(_, g)| g == vg)
            .map(|(p, _)| p.clone())
            .collect()
    };
    let mut vgs: Vec<(String, Vec<String>)> = Vec::new();
    let mut csets: Vec<String> = Vec::new();
    for (name, kind) in order(&trees) {
        let on = found_on.get(&name).cloned().unwrap_or_default();
        match kind {
            Kind::Disk | Kind::Partition => {
                if let Some(c) = sys.bcache_set(&name) {
                    if !csets.contains(&c) {
                        csets.push(c);
                    }
                }
                actions.push(Action::Wipe { dev: name });
            }
            Kind::Lvm => {
                let dm = sys.dm_name(&name).unwrap_or_default();
                let (vg, lv) = split_lvm_name(&dm)
                    .with_context(|| format!("/dev/{name}: {dm:?} is not an LVM name"))?;
                let mut pvs = vg_pvs(&vg);
                if pvs.is_empty() {
                    pvs = sys.slaves(&name);
                }
                let mut bases: Vec<String> = pvs.iter().flat_map(|p| sys.base_disks(p)).collect();
                bases.extend(sys.base_disks(&name));
                spans(format!("logical volume {vg}/{lv}"), &on, &bases)?;
                if !vgs.iter().any(|(g, _)| *g == vg) {
                    vgs.push((vg.clone(), pvs));
                }
                actions.push(Action::RemoveLv { dev: name, vg, lv });
            }
            Kind::Crypt => {
                spans(format!("crypt mapping /dev/{name}"), &on, &sys.base_disks(&name))?;
                let dm = sys.dm_name(&name).unwrap_or_else(|| name.clone());
                actions.push(Action::CloseCrypt { dev: name, name: dm });
            }
            Kind::Raid => {
                spans(format!("md array /dev/{name}"), &on, &sys.base_disks(&name))?;
                actions.push(Action::StopRaid {
                    members: sys.slaves(&name),
                    dev: name,
                });
            }
            Kind::Bcache => {
                spans(format!("bcache device /dev/{name}"), &on, &sys.base_disks(&name))?;
                actions.push(Action::StopBcache { dev: name });
            }
            Kind::OtherDm => bail!(
                "/dev/{name} on {} is a device-mapper device that is neither LVM nor dm-crypt (uuid {:?}): deployer cannot take it apart; remove it first",
                id_of(&on),
                sys.dm_uuid(&name).unwrap_or_default()
            ),
        }
    }
    // A volume group goes when its last logical volume here has gone; one with no logical
    // volume at all (bare physical volumes on the disks) before the first wipe.
    for (vg, pvs) in vgs {
        let last = actions
            .iter()
            .rposition(|a| matches!(a, Action::RemoveLv { vg: g, .. } if *g == vg))
            .expect("the vg came from one of its lvs");
        actions.insert(last + 1, Action::RemoveVg { vg, pvs });
    }
    let mut bare: Vec<(String, Vec<String>)> = Vec::new();
    for (pv, vg) in &facts.pvs {
        let here = found_on.contains_key(pv);
        let listed = actions
            .iter()
            .any(|a| matches!(a, Action::RemoveVg { vg: g, .. } if g == vg));
        if here && !listed {
            match bare.iter_mut().find(|(g, _)| g == vg) {
                Some((_, v)) => v.push(pv.clone()),
                None => bare.push((vg.clone(), vec![pv.clone()])),
            }
        }
    }
    for (vg, pvs) in bare {
        let all = vg_pvs(&vg);
        let bases: Vec<String> = all.iter().flat_map(|p| sys.base_disks(p)).collect();
        let on = found_on.get(&pvs[0]).cloned().unwrap_or_default();
        spans(format!("volume group {vg}"), &on, &bases)?;
        let first_wipe = actions
            .iter()
            .position(|a| matches!(a, Action::Wipe { .. }))
            .unwrap_or(actions.len());
        actions.insert(first_wipe, Action::RemoveVg { vg, pvs: all });
    }
    // Cache sets after the bcache devices that use them.
    if !csets.is_empty() {
        let at = actions
            .iter()
            .position(|a| matches!(a, Action::Wipe { .. }))
            .unwrap_or(actions.len());
        for (i, c) in csets.into_iter().enumerate() {
            actions.insert(at + i, Action::StopCacheSet { cset: c });
        }
    }
    Ok(Plan { trees, actions })
}

/// Bring up what an earlier deployment left on the disks, so that its holders show in sysfs
/// (curtin's `start_clear_holders_deps`; udev would do it on a full system): md members
/// assembled (`mdadm --incremental`, then the incomplete ones run), bcache superblocks registered, then, when any layer was
/// found, LVM scanned and activated. Only signatures on the named disks start anything: a disk
/// without layers is never scanned beyond itself. Returns whether LVM may be involved (then
/// [`Facts::gather`] asks `pvs`). Best effort: a layer that does not come up is wiped as
/// signatures.
pub fn activate_old_layers(sys: &Sysfs, disks: &[String]) -> bool {
    let mut layers = false;
    let mut md = false;
    for d in disks {
        let mut devs = sys.partitions(d);
        devs.push(d.clone());
        for name in devs {
            let node = PathBuf::from("/dev").join(&name);
            match tools::blkid_type(&node).as_deref() {
                Some("linux_raid_member") => {
                    layers = true;
                    md = true;
                    if let Err(e) = mdadm::incremental(&node) {
                        tracing::debug!("mdadm --incremental {}: {e:#}", node.display());
                    }
                }
                Some("bcache") => {
                    layers = true;
                    if let Err(e) = bcache::register(sys, &node) {
                        tracing::debug!("registering {}: {e:#}", node.display());
                    }
                }
                Some("LVM2_member") | Some("crypto_LUKS") => layers = true,
                _ => {}
            }
        }
    }
    if md {
        mdadm::incremental_run_all();
    }
    if layers && tools::which("lvm").is_some() {
        lvm::scan();
        if let Err(e) = lvm::activate(None) {
            tracing::debug!("vgchange --activate=y: {e:#}");
        }
    }
    layers
}

/// The whole of clear-holders on `disks` (config id, device): bring up old layers, plan, run.
/// Devices that are not block devices (an image file) are skipped.
pub fn clear_disks(disks: &[(String, PathBuf)], target: &Path) -> Result<()> {
    let sys = Sysfs::default();
    let mut named = Vec::new();
    for (id, path) in disks {
        let is_block = std::fs::metadata(path)
            .is_ok_and(|m| std::os::unix::fs::FileTypeExt::is_block_device(&m.file_type()));
        if is_block {
            named.push((id.clone(), sys.kname_of(path)?));
        }
    }
    if named.is_empty() {
        return Ok(());
    }
    let knames: Vec<String> = named.iter().map(|(_, k)| k.clone()).collect();
    let lvm = activate_old_layers(&sys, &knames);
    let facts = Facts::gather(&sys, lvm);
    let target = target
        .canonicalize()
        .unwrap_or_else(|_| target.to_path_buf());
    let p = plan(&sys, &named, &target, &facts)?;
    if !p.is_trivial() {
        for t in &p.trees {
            tracing::info!("clear-holders: current tree:\n{}", t.render().join("\n"));
        }
    }
    apply(&sys, &p)
}

fn wait_gone(p: &Path, what: &str) -> Result<()> {
    let t = Instant::now();
    while p.exists() {
        if t.elapsed() > Duration::from_secs(60) {
            bail!(
                "{what} did not go away within 60 s ({} remains)",
                p.display()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

fn dev(name: &str) -> PathBuf {
    PathBuf::from("/dev").join(name)
}

/// Run the plan, in order.
pub fn apply(sys: &Sysfs, plan: &Plan) -> Result<()> {
    for a in &plan.actions {
        tracing::info!("clear-holders: {a}");
        run(sys, a).with_context(|| format!("clear-holders: {a}"))?;
    }
    Ok(())
}

fn run(sys: &Sysfs, a: &Action) -> Result<()> {
    match a {
        Action::Unmount { point, .. } => {
            sys_mount::unmount(point, sys_mount::UnmountFlags::empty())
                .with_context(|| format!("unmounting {}", point.display()))?;
        }
        Action::Swapoff { dev: d } => tools::swapoff(&dev(d))?,
        Action::RemoveLv { vg, lv, .. } => lvm::lvremove(vg, lv)?,
        Action::RemoveVg { vg, pvs } => {
            lvm::vgremove(vg)?;
            for p in pvs {
                lvm::pvremove(&dev(p))?;
            }
        }
        Action::CloseCrypt { name, .. } => cryptsetup::close(name)?,
        Action::StopRaid { dev: d, members } => {
            mdadm::stop(&dev(d))?;
            wait_gone(&sys.dir(d).join("md"), &format!("/dev/{d}"))?;
            for m in members {
                mdadm::zero_superblock(&dev(m))?;
            }
        }
        Action::StopBcache { dev: d } => {
            // Its file system signature first: a later bcache on the same place starts clean.
            tools::wipefs_all(&dev(d))?;
            bcache::stop_device(sys, d)?;
            wait_gone(&sys.dir(d), &format!("/dev/{d}"))?;
        }
        Action::StopCacheSet { cset } => {
            let p = sys.root().join("fs/bcache").join(cset);
            if p.exists() {
                bcache::stop_set(sys, cset)?;
                wait_gone(&p, &format!("bcache cache set {cset}"))?;
            }
        }
        Action::Wipe { dev: d } => {
            if sys.size(d) == Some(1024) {
                return Ok(()); // an msdos extended partition: nothing to wipe
            }
            tools::wipefs_all(&dev(d))?;
        }
    }
    Ok(())
}

/// What clear-holders would do now on `disks` (config id, device), for `deployer plan`.
/// Read-only: layers that are not active are not brought up for it (an install first
/// assembles and activates what the disks carry, then plans again).
pub fn describe(disks: &[(String, PathBuf)], target: &Path) -> Vec<String> {
    let sys = Sysfs::default();
    let mut named = Vec::new();
    let mut out = vec![
        "    clear-holders, before anything is written: what an earlier deployment built on these disks is taken apart, top down (layers not active now are assembled or activated first)".to_string(),
    ];
    for (id, path) in disks {
        match sys.kname_of(path) {
            Ok(k) => named.push((id.clone(), k)),
            Err(_) => out.push(format!(
                "      disk {id}: {} not found here; its holders are read at install",
                path.display()
            )),
        }
    }
    if named.is_empty() {
        return out;
    }
    let facts = Facts::gather(&sys, false);
    match plan(&sys, &named, target, &facts) {
        Err(e) => out.push(format!("      an install would stop here: {e}")),
        Ok(p) if p.is_trivial() => out.push(format!(
            "      nothing is built on {}: their signatures are wiped",
            named
                .iter()
                .map(|(id, k)| format!("{id} (/dev/{k})"))
                .collect::<Vec<_>>()
                .join(", ")
        )),
        Ok(p) => {
            for t in &p.trees {
                out.extend(t.render().into_iter().map(|l| format!("      {l}")));
            }
            for (i, a) in p.actions.iter().enumerate() {
                out.push(format!("      {}. {a}", i + 1));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sysblock::fake::Tree;

    fn disks(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    /// An earlier deployment like the QEMU scenario's: a RAID1 of vda2 and vdb2 holding LVM
    /// (root and data), a bcache with its backing device on vda3 and its cache on vdc1, and a
    /// LUKS volume on vdc2.
    fn earlier() -> Tree {
        let t = Tree::new();
        t.disk("vda")
            .part("vda", "vda1")
            .part("vda", "vda2")
            .part("vda", "vda3")
            .disk("vdb")
            .part("vdb", "vdb1")
            .part("vdb", "vdb2")
            .disk("vdc")
            .part("vdc", "vdc1")
            .part("vdc", "vdc2")
            .holder("md0", &["vda2", "vdb2"], None)
            .holder("dm-0", &["md0"], Some(("vg0-root", "LVM-aaa")))
            .holder("dm-1", &["md0"], Some(("vg0-data", "LVM-bbb")))
            .holder("bcache0", &["vda3", "vdc1"], None)
            .bcache_member("vdc1", "cset-1", false)
            .bcache_member("vda3", "cset-1", true)
            .holder("dm-2", &["vdc2"], Some(("secret", "CRYPT-LUKS2-ccc")));
        t
    }

    fn names(p: &Plan) -> Vec<String> {
        p.actions.iter().map(|a| a.to_string()).collect()
    }

    #[test]
    fn takes_apart_from_the_top_down() {
        let t = earlier();
        let sys = t.sysfs();
        let facts = Facts {
            mounts: vec![
                ("dm-0".into(), "/tmp/t/target".into()),
                ("bcache0".into(), "/tmp/t/target/srv".into()),
            ],
            swaps: vec!["vdb1".into()],
            pvs: vec![("md0".into(), "vg0".into())],
        };
        let p = plan(
            &sys,
            &disks(&[("d0", "vda"), ("d1", "vdb"), ("d2", "vdc")]),
            Path::new("/tmp/t/target"),
            &facts,
        )
        .unwrap();
        let a = names(&p);
        let pos = |s: &str| {
            a.iter()
                .position(|x| x.starts_with(s))
                .unwrap_or_else(|| panic!("no {s:?} in {a:#?}"))
        };
        // Mounts first, deepest first; then swap.
        assert_eq!(a[0], "unmount /dev/bcache0 from /tmp/t/target/srv");
        assert_eq!(a[1], "unmount /dev/dm-0 from /tmp/t/target");
        assert_eq!(a[2], "swapoff /dev/vdb1");
        // LVs before their VG, the VG before the array under it, the array before its members.
        assert!(pos("lvremove vg0/root") < pos("vgremove vg0"));
        assert!(pos("lvremove vg0/data") < pos("vgremove vg0"));
        assert_eq!(a[pos("vgremove vg0")], "vgremove vg0, pvremove /dev/md0");
        assert!(pos("vgremove vg0") < pos("mdadm --stop /dev/md0"));
        assert_eq!(
            a[pos("mdadm --stop")],
            "mdadm --stop /dev/md0, zero the md superblock of /dev/vda2 /dev/vdb2"
        );
        assert!(pos("mdadm --stop") < pos("wipefs --all /dev/vda2"));
        assert!(pos("cryptsetup close secret") < pos("wipefs --all /dev/vdc2"));
        // bcache device, then its cache set, then signatures.
        assert!(pos("stop bcache device /dev/bcache0") < pos("stop bcache cache set cset-1"));
        assert!(pos("stop bcache cache set cset-1") < pos("wipefs --all /dev/vdc1"));
        // Partitions before their disks; every device is wiped once.
        for d in ["vda", "vdb", "vdc"] {
            let disk = a
                .iter()
                .position(|x| *x == format!("wipefs --all /dev/{d}"))
                .unwrap();
            assert!(pos(&format!("wipefs --all /dev/{d}1")) < disk);
        }
        assert_eq!(a.iter().filter(|x| x.starts_with("wipefs")).count(), 10);
        assert!(!p.is_trivial());
        // The tree as curtin draws it.
        let drawn = p.trees[0].render().join("\n");
        assert!(drawn.starts_with("vda (disk)\n|-- vda1 (partition)\n|-- vda2 (partition)\n|   `-- md0 (raid)\n|       |-- dm-0 (lvm)\n|       `-- dm-1 (lvm)\n`-- vda3 (partition)\n    `-- bcache0 (bcache)"), "{drawn}");
    }

    #[test]
    fn a_layer_on_an_unnamed_disk_stops_it() {
        let t = earlier();
        let sys = t.sysfs();
        // Only vda and vdc named: md0 also stands on vdb.
        let e = plan(
            &sys,
            &disks(&[("d0", "vda"), ("d2", "vdc")]),
            Path::new("/target"),
            &Facts::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("disk 'd0' (/dev/vda)")
                && e.contains("/dev/vdb")
                && e.contains("does not name"),
            "{e}"
        );
        // A volume group with a physical volume on an unnamed disk, seen through pvs.
        let t = Tree::new();
        t.disk("vda").part("vda", "vda1").disk("vdb");
        t.holder("dm-0", &["vda1"], Some(("big-lv", "LVM-x")));
        let facts = Facts {
            pvs: vec![("vda1".into(), "big".into()), ("vdb".into(), "big".into())],
            ..Default::default()
        };
        let e = plan(
            &t.sysfs(),
            &disks(&[("a", "vda")]),
            Path::new("/target"),
            &facts,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("logical volume big/lv") && e.contains("/dev/vdb"),
            "{e}"
        );
    }

    #[test]
    fn the_running_systems_mounts_are_not_touched() {
        let t = earlier();
        let facts = Facts {
            mounts: vec![("vdc2".into(), "/home".into())],
            ..Default::default()
        };
        let e = plan(
            &t.sysfs(),
            &disks(&[("d0", "vda"), ("d1", "vdb"), ("d2", "vdc")]),
            Path::new("/tmp/target"),
            &facts,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains(
                "/dev/vdc2 (on disk 'd2' (/dev/vdc)) is mounted at /home, outside the target"
            ),
            "{e}"
        );
    }

    #[test]
    fn bare_volume_groups_and_unknown_maps() {
        // A PV with no LV on it: its VG is removed before the wipes.
        let t = Tree::new();
        t.disk("vda").part("vda", "vda1");
        let facts = Facts {
            pvs: vec![("vda1".into(), "empty".into())],
            ..Default::default()
        };
        let p = plan(&t.sysfs(), &disks(&[("a", "vda")]), Path::new("/t"), &facts).unwrap();
        assert_eq!(
            names(&p),
            [
                "vgremove empty, pvremove /dev/vda1",
                "wipefs --all /dev/vda1",
                "wipefs --all /dev/vda"
            ]
        );
        // A blank disk: only signatures.
        let t = Tree::new();
        t.disk("vda");
        let p = plan(
            &t.sysfs(),
            &disks(&[("a", "vda")]),
            Path::new("/t"),
            &Facts::default(),
        )
        .unwrap();
        assert!(p.is_trivial());
        // A multipath map is not ours to remove.
        let t = Tree::new();
        t.disk("vda")
            .holder("dm-0", &["vda"], Some(("mpatha", "mpath-3600")));
        let e = plan(
            &t.sysfs(),
            &disks(&[("a", "vda")]),
            Path::new("/t"),
            &Facts::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("neither LVM nor dm-crypt"), "{e}");
    }
}
