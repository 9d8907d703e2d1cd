//! Storage layers (issue 14), as a whole deployment: three disks, the Debian cloud tgz onto a
//! RAID1 of two partitions holding LVM (root ext4, data xfs), a bcache device for /srv with its
//! cache on the third disk, and a LUKS volume opened by keyfile for /secret; the first boot
//! checks the stack. Then a second deployment onto the same disks with MAAS's flat layout:
//! clear-holders takes every layer apart first, and the flat system boots. Then a dd-gz image
//! whose root is on LVM: written, its root found in the logical volume and grown through
//! partition, PV, LV and file system, and it boots.
//!
//! The boots report through a systemd unit the config installs (cloud-init is switched off:
//! it costs minutes under TCG and is not what this tests). One alone:
//! `scripts/build-static && cargo test -p qemu-tests --test scenarios storage:: -- --nocapture`.

use qemu_tests::image::{self, LvmDiskRecipe, CLOUD_ROOT, LVM_LV, LVM_VG};
use qemu_tests::scenario::{stage_events, Deployment};
use qemu_tests::seed::storage_report_files;
use qemu_tests::{harness_unavailable, skip, Phases};
use serde_json::{json, Value};
use std::time::Duration;

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

/// The dd image with its root on LVM (packer-maas's Ubuntu LVM shape, Debian inside).
const LVM_DISK: LvmDiskRecipe = LvmDiskRecipe {
    name: "debian-cloud-lvm-ddgz",
    root: CLOUD_ROOT,
    size: 3 * GIB,
};

fn disk(id: &str, serial: &str, grub: bool) -> Value {
    json!({"id": id, "type": "disk", "ptable": "gpt", "serial": serial, "name": id,
           "wipe": "superblock", "grub_device": grub})
}

fn part(id: &str, dev: &str, n: u32, size: u64, flag: Option<&str>) -> Value {
    let mut p = json!({"id": id, "type": "partition", "device": dev, "number": n,
                       "size": format!("{size}B"), "wipe": "superblock"});
    if let Some(f) = flag {
        p["flag"] = json!(f);
    }
    p
}

fn fs(vol: &str, fstype: &str, path: &str) -> [Value; 2] {
    [
        json!({"id": format!("{vol}_format"), "type": "format", "volume": vol, "fstype": fstype,
               "label": vol.chars().take(11).collect::<String>()}),
        json!({"id": format!("{vol}_mount"), "type": "mount", "device": format!("{vol}_format"),
               "path": path}),
    ]
}

/// The report unit and cloud-init's off switch as write_files, and the unit enabled.
fn report_setup(cfg: &mut Value) {
    let mut wf = serde_json::Map::new();
    for (i, (path, mode, content)) in storage_report_files().iter().enumerate() {
        wf.insert(
            format!("report{i}"),
            json!({"path": format!("/{path}"), "permissions": format!("0{mode:o}"),
                   "content": content}),
        );
    }
    // Curthooks rebuild the initramfs: MODULES=dep keeps it minutes shorter under TCG (and
    // proves the md/LVM root is found from inside the chroot).
    wf.insert(
        "initramfs_modules".into(),
        json!({"path": "/etc/initramfs-tools/conf.d/modules-dep.conf", "content": "MODULES=dep\n"}),
    );
    cfg["write_files"] = Value::Object(wf);
    cfg["late_commands"] = json!({
        "90-enable-report": ["curtin", "in-target", "--", "systemctl", "enable",
                             "deployer-test-report.service"]
    });
}

const SECRET_KEY: &str = "correct horse battery staple, deployer test key";

fn layered_config(d: &Deployment) -> String {
    let root_lv = 2 * GIB;
    let mut items = vec![
        disk("disk0", "disk0", true),
        part("disk0-part1", "disk0", 1, MIB, Some("bios_grub")),
        part("disk0-part2", "disk0", 2, 3 * GIB, Some("raid")),
        part("disk0-part3", "disk0", 3, 512 * MIB, None),
        disk("disk1", "disk1", true),
        part("disk1-part1", "disk1", 1, MIB, Some("bios_grub")),
        part("disk1-part2", "disk1", 2, 3 * GIB, Some("raid")),
        disk("disk2", "disk2", false),
        // bcache wants more than 512 buckets (of 512 KiB) in a cache.
        part("disk2-part1", "disk2", 1, 512 * MIB, None),
        part("disk2-part2", "disk2", 2, 256 * MIB, None),
        json!({"id": "md0", "type": "raid", "name": "md0", "raidlevel": 1,
               "devices": ["disk0-part2", "disk1-part2"]}),
        json!({"id": "vg0", "type": "lvm_volgroup", "name": "vg0", "devices": ["md0"]}),
        json!({"id": "vg0-root", "type": "lvm_partition", "volgroup": "vg0", "name": "root",
               "size": format!("{root_lv}B")}),
        json!({"id": "vg0-data", "type": "lvm_partition", "volgroup": "vg0", "name": "data"}),
        json!({"id": "bcache0", "type": "bcache", "backing_device": "disk0-part3",
               "cache_device": "disk2-part1", "cache_mode": "writeback"}),
        json!({"id": "secret", "type": "dm_crypt", "volume": "disk2-part2", "dm_name": "secret",
               "keyfile": {"path": "/etc/luks-keys/secret.key", "content": SECRET_KEY}}),
    ];
    items.extend(fs("vg0-root", "ext4", "/"));
    items.extend(fs("vg0-data", "xfs", "/data"));
    items.extend(fs("bcache0", "ext4", "/srv"));
    items.extend(fs("secret", "ext4", "/secret"));
    let mut cfg = json!({
        "sources": {"00_image": {"type": "tgz", "uri": d.url("/image")}},
        "storage": {"version": 1, "config": items},
        "install": {"log_file": "/tmp/install.log", "post_files": ["/tmp/install.log"]},
    });
    report_setup(&mut cfg);
    serde_json::to_string_pretty(&cfg).unwrap() + "\n"
}

/// MAAS's flat layout for this machine (BIOS, GPT): every disk listed with `wipe: superblock`,
/// the boot disk with a bios_grub partition and an ext4 root filling it. With the tgz it is
/// applied (and the boot reports as the layered one does); with a dd image, as MAAS sends it
/// for custom dd images, only its disk choice is used.
fn flat_config(d: &Deployment, disk_size: u64, dd: bool) -> String {
    let root = (disk_size - 5 * MIB - MIB) / (4 * MIB) * (4 * MIB);
    let items = vec![
        disk("sda", "disk0", true),
        json!({"id": "sda-part1", "type": "partition", "number": 1, "offset": "4194304B",
               "size": "1048576B", "device": "sda", "wipe": "zero", "flag": "bios_grub"}),
        json!({"id": "sda-part2", "name": "sda-part2", "type": "partition", "number": 2,
               "size": format!("{root}B"), "device": "sda", "wipe": "superblock"}),
        json!({"id": "sdb", "name": "sdb", "type": "disk", "wipe": "superblock", "serial": "disk1"}),
        json!({"id": "sdc", "name": "sdc", "type": "disk", "wipe": "superblock", "serial": "disk2"}),
        json!({"id": "sda-part2_format", "type": "format", "fstype": "ext4", "label": "root",
               "volume": "sda-part2"}),
        json!({"id": "sda-part2_mount", "type": "mount", "device": "sda-part2_format",
               "path": "/"}),
    ];
    let source = if dd {
        json!({"type": "dd-gz", "uri": d.url("/image-lvm")})
    } else {
        json!({"type": "tgz", "uri": d.url("/image")})
    };
    let mut cfg = json!({
        "sources": {"00_image": source},
        "storage": {"version": 1, "config": items},
        "install": {"log_file": "/tmp/install.log", "post_files": ["/tmp/install.log"]},
    });
    if !dd {
        report_setup(&mut cfg);
    }
    serde_json::to_string_pretty(&cfg).unwrap() + "\n"
}

/// The config (JSON, which deployer reads as YAML) with MAAS's webhook reporting added.
fn with_reporting(d: &Deployment, json_text: &str) -> String {
    let mut v: Value = serde_json::from_str(json_text).expect("config json");
    let url = d.url(qemu_tests::scenario::EVENTS_PATH);
    v["reporting"] = json!({"maas": {"type": "webhook", "endpoint": url,
        "consumer_key": qemu_tests::scenario::CONSUMER_KEY,
        "token_key": qemu_tests::scenario::TOKEN_KEY,
        "token_secret": qemu_tests::scenario::TOKEN_SECRET, "level": "DEBUG"}});
    serde_json::to_string_pretty(&v).unwrap() + "\n"
}

/// The install exited 0, and its events (from `from` on) end in cmd-install SUCCESS with no FAIL.
fn assert_installed(d: &Deployment, run: &qemu_tests::vm::Outcome, from: usize, what: &str) {
    assert_eq!(
        run.result("install-exit").as_deref(),
        Some("0"),
        "{what}: deployer install failed; its output:\n{}",
        Deployment::agent_output(run)
    );
    let ev = stage_events(&d.events()[from..]);
    assert_eq!(
        ev.last()
            .map(|e| (e.0.as_str(), e.1.as_str(), e.2.as_str())),
        Some(("cmd-install", "finish", "SUCCESS")),
        "{what}: {ev:#?}"
    );
    assert!(!ev.iter().any(|e| e.2 == "FAIL"), "{what}: {ev:#?}");
}

/// The boot reported, with no failed unit and no md, bcache or crypt device left.
fn assert_plain_boot(boot: &qemu_tests::vm::Outcome) -> String {
    let ctx = boot.tail(80);
    assert_eq!(boot.result("done").as_deref(), Some("1"), "{ctx}");
    let lsblk = boot.result("lsblk").unwrap_or_default();
    assert!(
        !lsblk.contains("raid1") && !lsblk.contains("bcache") && !lsblk.contains("crypt"),
        "old layers came back: {lsblk}"
    );
    assert_eq!(boot.result("failed-units").as_deref(), Some(""), "{ctx}");
    ctx
}

/// The scenario's configs load and plan on the host (milliseconds; the VM run takes many
/// minutes to find a typo).
#[test]
fn the_scenario_configs_are_valid() {
    let d = Deployment::new(
        "storage-configs",
        std::path::Path::new("/dev/null"),
        GIB,
        false,
    )
    .expect("deployment");
    for (name, text) in [
        ("layered", with_reporting(&d, &layered_config(&d))),
        ("flat", with_reporting(&d, &flat_config(&d, 4 * GIB, false))),
        (
            "flat-dd",
            with_reporting(&d, &flat_config(&d, 4 * GIB, true)),
        ),
    ] {
        let f = d.dir.path().join(format!("{name}.yaml"));
        std::fs::write(&f, &text).unwrap();
        for cmd in ["validate", "plan"] {
            let o = std::process::Command::new(testkit::deployer_bin())
                .args([cmd, "-c"])
                .arg(&f)
                .output()
                .unwrap();
            let (out, err) = (
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr),
            );
            assert!(o.status.success(), "{name} {cmd}: {err}\n{out}");
            assert!(!err.contains("warning"), "{name} {cmd}: {err}");
            assert!(!out.contains("not supported"), "{name} {cmd}: {out}");
        }
    }
}

#[test]
fn raid_lvm_bcache_luks_then_redeploy_over_them() {
    if let Some(why) = harness_unavailable() {
        skip("raid_lvm_bcache_luks_then_redeploy_over_them", &why);
        return;
    }
    let _lane = qemu_tests::lane::acquire();
    let mut ph = Phases::new("storage");
    let (tgz, _) = ph
        .run("image tgz (cached)", || image::tgz(&CLOUD_ROOT))
        .expect("tgz");
    let (lvm_dd, _) = ph
        .run("image lvm ddgz (cached)", || image::lvm_ddgz(&LVM_DISK))
        .expect("lvm ddgz");
    let disk_size = 4 * GIB;
    let mut d = Deployment::new("storage", &tgz, disk_size, false).expect("deployment");
    d.add_disk(4 * GIB).unwrap();
    d.add_disk(GIB + 64 * MIB).unwrap();
    d.server.serve_file("/image-lvm", &lvm_dd);

    // 1. The layered deployment.
    let cfg = with_reporting(&d, &layered_config(&d));
    let run = ph
        .run("deploy raid+lvm+bcache+luks (TCG)", || {
            d.deploy(&cfg, Duration::from_secs(2400))
        })
        .expect("deploy");
    assert_installed(&d, &run, 0, "layered deployment");

    // 2. Its first boot: root on the LV on md, every mount up, the LUKS volume open from crypttab.
    let boot = ph
        .run("first boot of the layered system (SeaBIOS, TCG)", || {
            d.boot_and_report("storage-boot1", Duration::from_secs(900))
        })
        .expect("boot");
    let ctx = boot.tail(80);
    assert_eq!(boot.result("done").as_deref(), Some("1"), "{ctx}");
    assert_eq!(
        boot.result("root-source").as_deref(),
        Some("/dev/mapper/vg0-root"),
        "{ctx}"
    );
    let mounts = boot.result("mounts").unwrap_or_default();
    for want in [
        "/data /dev/mapper/vg0-data xfs",
        "/srv /dev/bcache0 ext4",
        "/secret /dev/mapper/secret ext4",
    ] {
        assert!(
            mounts.contains(want),
            "{want:?} not mounted: {mounts}\n{ctx}"
        );
    }
    let mdstat = boot.result("mdstat").unwrap_or_default();
    assert!(
        mdstat.contains("active raid1") && mdstat.contains("vda2") && mdstat.contains("vdb2"),
        "{mdstat}"
    );
    let lsblk = boot.result("lsblk").unwrap_or_default();
    assert!(lsblk.contains("vg0-root lvm ext4 /"), "{lsblk}");
    let crypttab = boot.result("crypttab").unwrap_or_default();
    assert!(
        crypttab.starts_with("secret UUID=")
            && crypttab.contains(" /etc/luks-keys/secret.key luks"),
        "{crypttab}"
    );
    assert!(
        boot.result("crypt-status")
            .unwrap_or_default()
            .contains("is active and is in use"),
        "{ctx}"
    );
    let conf = boot.result("mdadm-conf").unwrap_or_default();
    assert!(
        conf.contains("ARRAY /dev/md0") && conf.contains("UUID="),
        "{conf}"
    );
    // curtin's by-dname links: the named disks, the array, each LV. (The disks' `-part%n`
    // rules need their serials from udev, which this ephemeral OS does not run.)
    let dnames = boot.result("dnames").unwrap_or_default();
    for want in [
        "disk0,",
        "disk1,",
        "disk2,",
        "md0,",
        "vg0-root,",
        "vg0-data,",
    ] {
        assert!(
            dnames.contains(want),
            "no by-dname/{want} in {dnames:?}\n{ctx}"
        );
    }
    let fstab = boot.result("fstab").unwrap_or_default();
    assert_eq!(
        fstab.matches("/dev/disk/by-uuid/").count(),
        4,
        "fstab not by UUID: {fstab}"
    );
    assert_eq!(
        boot.result("bcache-mode")
            .as_deref()
            .map(|m| m.contains("[writeback]")),
        Some(true),
        "{ctx}"
    );
    assert_eq!(boot.result("failed-units").as_deref(), Some(""), "{ctx}");

    // 3. Again onto the same disks, with MAAS's flat layout: every holder taken apart first.
    let cfg = with_reporting(&d, &flat_config(&d, disk_size, false));
    let from = d.events().len();
    let run = ph
        .run("redeploy tgz, MAAS flat layout (TCG)", || {
            d.deploy(&cfg, Duration::from_secs(2400))
        })
        .expect("redeploy");
    assert_installed(&d, &run, from, "flat redeploy");
    let out = Deployment::agent_output(&run);
    for want in [
        "clear-holders: lvremove vg0/root",
        "clear-holders: vgremove vg0",
        "clear-holders: mdadm --stop",
        "clear-holders: stop bcache device",
        "clear-holders: stop bcache cache set",
        "clear-holders: wipefs --all /dev/vdc2",
    ] {
        assert!(
            out.contains(want),
            "{want:?} not in the install's output:\n{out}"
        );
    }
    let boot = ph
        .run("boot of the flat system (SeaBIOS, TCG)", || {
            d.boot_and_report("storage-boot2", Duration::from_secs(900))
        })
        .expect("boot 2");
    let ctx = assert_plain_boot(&boot);
    assert_eq!(
        boot.result("root-source").as_deref(),
        Some("/dev/vda2"),
        "{ctx}"
    );

    // 4. A dd-gz image with its root on LVM (MAAS's flat layout only chooses the disk): the
    // root is found in the logical volume and grows through partition, PV, LV and ext4.
    let cfg = with_reporting(&d, &flat_config(&d, disk_size, true));
    let from = d.events().len();
    let run = ph
        .run("deploy the LVM dd-gz image (TCG)", || {
            d.deploy(&cfg, Duration::from_secs(1800))
        })
        .expect("dd deploy");
    assert_installed(&d, &run, from, "LVM dd image");
    let out = Deployment::agent_output(&run);
    assert!(
        out.contains("has /curtin") && out.contains("grow: grew /dev/mapper/ubuntu--vg-ubuntu--lv"),
        "{out}"
    );
    let boot = ph
        .run("boot of the LVM dd image (SeaBIOS, TCG)", || {
            d.boot_and_report("storage-boot3", Duration::from_secs(900))
        })
        .expect("boot 3");
    let ctx = assert_plain_boot(&boot);
    let dm = format!(
        "/dev/mapper/{}-{}",
        LVM_VG.replace('-', "--"),
        LVM_LV.replace('-', "--")
    );
    assert_eq!(
        boot.result("root-source").as_deref(),
        Some(dm.as_str()),
        "{ctx}"
    );
    let root: u64 = boot
        .result("root-size")
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    assert!(
        root > 3 * GIB,
        "the root did not grow past the 3 GiB image: {root} bytes\n{ctx}"
    );
}
