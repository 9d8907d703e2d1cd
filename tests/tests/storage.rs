//! block-meta on loop disks: the partitions, file systems, mounts and fstab a user would check
//! with sfdisk, blkid and findmnt; errors before anything is written.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use testkit::{require_root, sh, LoopDisk, MountGuard};

const MIB: u64 = 1 << 20;

/// This machine's kernel may lack vfat (no modules): then the ESP cannot be mounted.
fn kernel_has(fs: &str) -> bool {
    std::fs::read_to_string("/proc/filesystems")
        .unwrap()
        .split_whitespace()
        .any(|w| w == fs)
}

fn block_meta(cfg: &str, target: &Path, fstab: &Path, extra: &[&str]) -> Output {
    block_meta_env(cfg, target, fstab, extra, &[])
}

/// [`block_meta`] with more environment (`WORKING_DIR`, as an install gives a stage).
fn block_meta_env(
    cfg: &str,
    target: &Path,
    fstab: &Path,
    extra: &[&str],
    env: &[(&str, &Path)],
) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let cfg_path = dir.path().join("storage.yaml");
    std::fs::write(&cfg_path, cfg).unwrap();
    testkit::deployer()
        .arg("block-meta")
        .args(extra)
        .arg("-c")
        .arg(&cfg_path)
        .arg("--target-mount")
        .arg(target)
        .env("OUTPUT_FSTAB", fstab)
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

/// block-meta that must succeed.
fn block_meta_ok(cfg: &str, t: &Target) {
    let out = block_meta(cfg, &t.path(), &t.fstab(), &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn sfdisk(dev: &Path) -> serde_json::Value {
    let out = sh(&format!("sfdisk --json {}", dev.display()));
    serde_json::from_str::<serde_json::Value>(&out).unwrap()["partitiontable"].clone()
}

/// (node, start sector, size sectors, type) of each partition.
fn parts(dev: &Path) -> Vec<(String, u64, u64, String)> {
    sfdisk(dev)["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["node"].as_str().unwrap().to_string(),
                p["start"].as_u64().unwrap(),
                p["size"].as_u64().unwrap(),
                p["type"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn blkid(dev: &Path, tag: &str) -> String {
    sh(&format!("blkid -p -o value -s {tag} {}", dev.display()))
        .trim()
        .to_string()
}

struct Target {
    dir: tempfile::TempDir,
}

impl Target {
    fn new() -> Self {
        Target {
            dir: tempfile::tempdir_in(testkit::loopdev::scratch_root()).unwrap(),
        }
    }
    fn path(&self) -> PathBuf {
        self.dir.path().join("target")
    }
    fn fstab(&self) -> PathBuf {
        self.dir.path().join("fstab")
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        drop(MountGuard(self.path()));
    }
}

#[test]
fn two_disks_gpt_and_msdos() {
    require_root();
    let a = LoopDisk::new(2048 * MIB);
    let b = LoopDisk::new(512 * MIB);
    let t = Target::new();
    let vfat = kernel_has("vfat");
    let esp_mount = if vfat {
        "    - {id: esp_mount, type: mount, device: esp_fs, path: /boot/efi}\n"
    } else {
        ""
    };
    let cfg = format!(
        r#"
storage:
  version: 1
  config:
    - {{id: sda, type: disk, path: {a}, ptable: gpt, wipe: superblock, grub_device: true}}
    - {{id: sda-part1, type: partition, device: sda, size: 512M, flag: boot, number: 1}}
    - {{id: sda-part2, type: partition, device: sda, size: 1G, number: 2}}
    - {{id: sda-part3, type: partition, device: sda, size: 256M, flag: swap, number: 3}}
    - {{id: sdb, type: disk, path: {b}, ptable: msdos}}
    - {{id: sdb-part1, type: partition, device: sdb, size: 320M}}
    - {{id: esp_fs, type: format, volume: sda-part1, fstype: fat32, label: efi}}
    - {{id: root_fs, type: format, volume: sda-part2, fstype: ext4, label: root-filesystem-long-label, uuid: 6b5fe5a6-1e4c-4b5e-9c7a-1d2e3f405162}}
    - {{id: swap_fs, type: format, volume: sda-part3, fstype: swap, label: swap}}
    - {{id: data_fs, type: format, volume: sdb-part1, fstype: xfs, label: data}}
    - {{id: data_mount, type: mount, device: data_fs, path: /srv/data, options: "noatime,nodev"}}
    - {{id: root_mount, type: mount, device: root_fs, path: /}}
{esp_mount}    - {{id: swap_mount, type: mount, device: swap_fs, path: none}}
"#,
        a = a.dev.display(),
        b = b.dev.display()
    );
    let out = block_meta(&cfg, &t.path(), &t.fstab(), &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    assert_eq!(sfdisk(&a.dev)["label"], "gpt");
    let p = parts(&a.dev);
    let esp = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B";
    let linux = "0FC63DAF-8483-4772-8E79-3D69D8477DE4";
    let swap = "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F";
    assert_eq!(
        p.iter()
            .map(|x| (x.1, x.2, x.3.as_str()))
            .collect::<Vec<_>>(),
        vec![
            (2048, 1048576, esp),
            (2048 + 1048576, 2097152, linux),
            (2048 + 1048576 + 2097152, 524288, swap)
        ]
    );
    assert_eq!(sfdisk(&b.dev)["label"], "dos");
    let q = parts(&b.dev);
    assert_eq!(
        q.iter()
            .map(|x| (x.1, x.2, x.3.as_str()))
            .collect::<Vec<_>>(),
        vec![(2048, 655360, "83")]
    );

    assert_eq!(blkid(&a.part(1), "TYPE"), "vfat");
    assert_eq!(blkid(&a.part(1), "LABEL"), "efi");
    assert_eq!(blkid(&a.part(2), "TYPE"), "ext4");
    assert_eq!(
        blkid(&a.part(2), "LABEL"),
        "root-filesystem-",
        "ext labels truncate to 16"
    );
    assert_eq!(
        blkid(&a.part(2), "UUID"),
        "6b5fe5a6-1e4c-4b5e-9c7a-1d2e3f405162"
    );
    assert_eq!(blkid(&a.part(3), "TYPE"), "swap");
    assert_eq!(blkid(&b.part(1), "TYPE"), "xfs");

    // Mounted in path order under the target, options honoured.
    let mnt = sh(&format!(
        "findmnt -rn -o TARGET,SOURCE,OPTIONS -R {}",
        t.path().display()
    ));
    let lines: Vec<&str> = mnt.lines().collect();
    assert_eq!(lines.len(), if vfat { 3 } else { 2 }, "{mnt}");
    assert!(
        lines[0].starts_with(&format!("{} {}", t.path().display(), a.part(2).display())),
        "{mnt}"
    );
    let data = lines.iter().find(|l| l.contains("/srv/data")).unwrap();
    assert!(data.contains("noatime") && data.contains("nodev"), "{data}");

    // fstab, curtin's format, in config order; swap included.
    let u = |d: &Path| blkid(d, "UUID");
    let esp_line = if vfat {
        format!(
            "# /boot/efi was on {} during curtin installation\n/dev/disk/by-uuid/{} /boot/efi vfat defaults 0 1\n",
            a.part(1).display(),
            u(&a.part(1))
        )
    } else {
        String::new()
    };
    let expected = format!(
        "# /srv/data was on {b1} during curtin installation\n\
/dev/disk/by-uuid/{ub1} /srv/data xfs noatime,nodev 0 1\n\
# / was on {a2} during curtin installation\n\
/dev/disk/by-uuid/{ua2} / ext4 defaults 0 1\n\
{esp_line}\
/dev/disk/by-uuid/{ua3} none swap sw 0 0\n",
        b1 = b.part(1).display(),
        a2 = a.part(2).display(),
        ub1 = u(&b.part(1)),
        ua2 = u(&a.part(2)),
        ua3 = u(&a.part(3)),
    );
    assert_eq!(std::fs::read_to_string(t.fstab()).unwrap(), expected);
    let etc = std::fs::read_to_string(t.path().join("etc/fstab")).unwrap();
    assert!(
        etc.starts_with("# /etc/fstab: static file system information."),
        "{etc}"
    );
    assert!(etc.ends_with(&expected), "{etc}");

    // --umount takes it all down.
    let out = block_meta(&cfg, &t.path(), &t.fstab(), &["--umount"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        sh(&format!("findmnt -rn -R {} || true", t.path().display())),
        ""
    );
}

fn simple(layout: &str, disk: &LoopDisk) -> (Target, Output) {
    let t = Target::new();
    let cfg = format!("block-meta: {{format: {layout}}}\n");
    let dev = disk.dev.display().to_string();
    let out = block_meta(&cfg, &t.path(), &t.fstab(), &["simple", "-D", &dev]);
    (t, out)
}

#[test]
fn simple_mode_uefi() {
    require_root();
    let d = LoopDisk::new(2048 * MIB);
    let (t, out) = simple("uefi", &d);
    if !kernel_has("vfat") {
        // The layout and file systems are made; the ESP mount fails clearly and nothing stays mounted.
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("does not support vfat"), "{err}");
        assert_eq!(
            sh(&format!("findmnt -rn -R {} || true", t.path().display())),
            ""
        );
    } else {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let p = parts(&d.dev);
    assert_eq!(p[0].1, 2048 + 1048576, "root after the ESP");
    assert_eq!(p[0].3, "0FC63DAF-8483-4772-8E79-3D69D8477DE4");
    assert!(p[0].0.ends_with("p1"));
    assert_eq!(
        (p[1].1, p[1].2, p[1].3.as_str()),
        (2048, 1048576, "C12A7328-F81F-11D2-BA4B-00A0C93EC93B")
    );
    assert!(p[1].0.ends_with("p15"));
    assert_eq!(blkid(&d.part(1), "LABEL"), "cloudimg-rootfs");
    assert_eq!(blkid(&d.part(15), "LABEL"), "uefi-boot");
    if !kernel_has("vfat") {
        return;
    }
    assert_eq!(
        std::fs::read_to_string(t.fstab()).unwrap(),
        format!(
            "# / was on {} during curtin installation\nLABEL=cloudimg-rootfs / ext4 defaults 0 0\n\
# /boot/efi was on {} during curtin installation\nLABEL=uefi-boot /boot/efi vfat defaults 0 0\n",
            d.part(1).display(),
            d.part(15).display()
        )
    );
    assert!(t.path().join("boot/efi").is_dir());
}

#[test]
fn simple_mode_bios_gpt() {
    require_root();
    let d = LoopDisk::new(1024 * MIB);
    let (_t, out) = simple("gpt", &d);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let p = parts(&d.dev);
    assert_eq!(
        (p[1].1, p[1].2, p[1].3.as_str()),
        (2048, 2048, "21686148-6449-6E6F-744E-656564454649")
    );
    assert_eq!(p[0].1, 4096);
    // The root takes the rest, up to the backup GPT.
    assert_eq!(p[0].1 + p[0].2, 1024 * MIB / 512 - 33);
    assert_eq!(blkid(&d.part(1), "LABEL"), "cloudimg-rootfs");
}

#[test]
fn four_k_native_disk() {
    require_root();
    let d = LoopDisk::with_sector_size(1024 * MIB, 4096);
    let t = Target::new();
    let cfg = format!(
        r#"
storage:
  version: 1
  config:
    - {{id: d, type: disk, path: {}, ptable: gpt}}
    - {{id: p1, type: partition, device: d, size: 512M, flag: boot}}
    - {{id: p2, type: partition, device: d, size: 256M}}
    - {{id: f1, type: format, volume: p1, fstype: vfat}}
    - {{id: f2, type: format, volume: p2, fstype: ext4, label: root}}
    - {{id: m2, type: mount, device: f2, path: /}}
"#,
        d.dev.display()
    );
    let out = block_meta(&cfg, &t.path(), &t.fstab(), &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let j = sfdisk(&d.dev);
    assert_eq!(j["sectorsize"], 4096);
    let p = parts(&d.dev);
    assert_eq!((p[0].1, p[0].2), (256, 131072));
    assert_eq!((p[1].1, p[1].2), (256 + 131072, 65536));
    assert_eq!(blkid(&d.part(2), "LABEL"), "root");
    assert_eq!(blkid(&d.part(1), "TYPE"), "vfat");
}

#[test]
fn msdos_extended_and_logical() {
    require_root();
    let d = LoopDisk::new(512 * MIB);
    let t = Target::new();
    let cfg = format!(
        r#"
storage:
  version: 1
  config:
    - {{id: d, type: disk, path: {}, ptable: msdos}}
    - {{id: p1, type: partition, device: d, size: 100M, flag: boot}}
    - {{id: p2, type: partition, device: d, size: 300M, flag: extended}}
    - {{id: p5, type: partition, device: d, size: 100M, flag: logical}}
    - {{id: p6, type: partition, device: d, size: 100M, flag: logical}}
    - {{id: f5, type: format, volume: p5, fstype: ext4}}
"#,
        d.dev.display()
    );
    let out = block_meta(&cfg, &t.path(), &t.fstab(), &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let p = parts(&d.dev);
    let got: Vec<(u64, u64, &str)> = p.iter().map(|x| (x.1, x.2, x.3.as_str())).collect();
    assert_eq!(
        got,
        vec![
            (2048, 204800, "83"),
            // curtin v1: the extended partition grows 1 MiB per logical one (their EBRs).
            (206848, 614400 + 2 * 2048, "5"),
            (206848 + 2048, 204800, "83"),
            (206848 + 2048 + 204800 + 2048, 204800, "83"),
        ]
    );
    assert!(p[2].0.ends_with("p5") && p[3].0.ends_with("p6"));
    assert_eq!(blkid(&d.part(5), "TYPE"), "ext4");
}

fn assert_untouched(disk: &LoopDisk, before: &[u8]) {
    assert!(
        disk.read_at(0, before.len()) == before,
        "disk bytes changed"
    );
}

#[test]
fn errors_before_anything_is_written() {
    require_root();
    let d = LoopDisk::new(256 * MIB);
    // An existing table and file system that must survive a refused config.
    sh(&format!(
        "sgdisk -o -n 1:2048:+64M {} >/dev/null && partx -u {} || true",
        d.dev.display(),
        d.dev.display()
    ));
    d.partx();
    sh(&format!("mkfs.ext4 -q -F {}", d.part(1).display()));
    let before = d.read_at(0, 4 * MIB as usize);
    let tail_before = d.read_at(d.size() - MIB, MIB as usize);
    let t = Target::new();

    let cases = [
        (
            format!(
                "storage:\n  version: 1\n  config:\n    - {{id: d, type: disk, path: {}, ptable: gpt}}\n    - {{id: missing, type: disk, serial: NO-SUCH-SERIAL-XYZ, ptable: gpt}}\n    - {{id: p, type: partition, device: d, size: 64M}}\n",
                d.dev.display()
            ),
            vec!["disk 'missing'", "NO-SUCH-SERIAL-XYZ", "disks seen"],
        ),
        (
            format!(
                "storage:\n  version: 1\n  config:\n    - {{id: d, type: disk, path: {}, ptable: gpt}}\n    - {{id: p1, type: partition, device: d, size: 200M}}\n    - {{id: p2, type: partition, device: d, size: 100M}}\n",
                d.dev.display()
            ),
            vec!["partition 'p2' does not fit"],
        ),
        (
            format!(
                "storage:\n  version: 1\n  config:\n    - {{id: d, type: disk, path: {}, ptable: gpt}}\n    - {{id: p1, type: partition, device: d, size: 64M}}\n    - {{id: f, type: format, volume: p1, fstype: zfsroot}}\n",
                d.dev.display()
            ),
            vec!["not supported yet: format id=f with fstype zfsroot"],
        ),
        (
            format!(
                "storage:\n  version: 1\n  config:\n    - {{id: d, type: disk, path: {}, ptable: gpt}}\n    - {{id: p1, type: partition, device: nope, size: 64M}}\n",
                d.dev.display()
            ),
            vec!["refers to 'nope'"],
        ),
    ];
    for (cfg, needles) in cases {
        let out = block_meta(&cfg, &t.path(), &t.fstab(), &[]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{cfg}");
        let want = if cfg.contains("nope") { 2 } else { 5 };
        assert_eq!(out.status.code(), Some(want), "exit code for: {err}");
        for n in needles {
            assert!(err.contains(n), "{n:?} not in {err}");
        }
        assert_untouched(&d, &before);
        assert!(
            d.read_at(d.size() - MIB, MIB as usize) == tail_before,
            "disk tail changed"
        );
    }
    // A mounted disk is refused too (clear-holders leaves the running system's mounts alone).
    let m = tempfile::tempdir().unwrap();
    sh(&format!(
        "mount {} {}",
        d.part(1).display(),
        m.path().display()
    ));
    let _g = MountGuard(m.path().to_path_buf());
    let cfg = format!(
        "storage:\n  version: 1\n  config:\n    - {{id: d, type: disk, path: {}, ptable: gpt}}\n    - {{id: p1, type: partition, device: d, size: 64M}}\n",
        d.dev.display()
    );
    let out = block_meta(&cfg, &t.path(), &t.fstab(), &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{err}");
    assert!(
        err.contains("is mounted at") && err.contains("outside the target"),
        "{err}"
    );
}

#[test]
fn preserve_keeps_and_checks() {
    require_root();
    let d = LoopDisk::new(256 * MIB);
    let t = Target::new();
    let base = format!(
        "storage:\n  version: 1\n  config:\n    - {{id: d, type: disk, path: {}, ptable: gpt}}\n    - {{id: p1, type: partition, device: d, size: 64M}}\n    - {{id: f1, type: format, volume: p1, fstype: ext4, label: keep}}\n",
        d.dev.display()
    );
    let out = block_meta(&base, &t.path(), &t.fstab(), &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let uuid = blkid(&d.part(1), "UUID");
    let keep = base
        .replace("ptable: gpt}", "ptable: gpt, preserve: true}")
        .replace("size: 64M}", "size: 64M, preserve: true}")
        .replace("label: keep}", "label: keep, preserve: true}");
    let out = block_meta(&keep, &t.path(), &t.fstab(), &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(blkid(&d.part(1), "UUID"), uuid);
    let wrong = keep.replace("size: 64M", "size: 32M");
    let out = block_meta(&wrong, &t.path(), &t.fstab(), &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("preserve: true") && err.contains("expected 65536 sectors, found 131072"),
        "{err}"
    );
}

#[test]
fn block_meta_then_extract_keeps_our_fstab_under_the_image_header() {
    require_root();
    let d = LoopDisk::new(512 * MIB);
    let t = Target::new();
    let cfg = format!(
        "storage:\n  version: 1\n  config:\n    - {{id: d, type: disk, path: {}, ptable: gpt}}\n    - {{id: p1, type: partition, device: d, size: 256M}}\n    - {{id: f1, type: format, volume: p1, fstype: ext4}}\n    - {{id: m1, type: mount, device: f1, path: /}}\n",
        d.dev.display()
    );
    let out = block_meta(&cfg, &t.path(), &t.fstab(), &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ours = std::fs::read_to_string(t.fstab()).unwrap();

    let img = t.dir.path().join("img");
    std::fs::create_dir_all(img.join("etc")).unwrap();
    std::fs::write(
        img.join("etc/fstab"),
        "# /etc/fstab: image header\n# second line\nUUID=old / ext4 defaults 0 1\n",
    )
    .unwrap();
    sh(&format!(
        "tar -C {} -czf {}/img.tgz .",
        img.display(),
        t.dir.path().display()
    ));
    let ecfg = t.dir.path().join("extract.yaml");
    std::fs::write(
        &ecfg,
        format!("sources:\n  10_root: {}/img.tgz\n", t.dir.path().display()),
    )
    .unwrap();
    let out = testkit::deployer()
        .args(["extract", "-c"])
        .arg(&ecfg)
        .arg("--target-mount")
        .arg(t.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let etc = std::fs::read_to_string(t.path().join("etc/fstab")).unwrap();
    assert_eq!(
        etc,
        format!("# /etc/fstab: image header\n# second line\n\n{ours}")
    );
}

/// Run `curtin block-meta simple` as `deployer install` runs the stage: with only $CONFIG (the
/// merged config, JSON), $TARGET_MOUNT_POINT and $OUTPUT_FSTAB set. It must succeed.
fn curtin_block_meta_simple(t: &Target, config: serde_json::Value) {
    let cfg = t.dir.path().join("config.json");
    std::fs::write(&cfg, config.to_string()).unwrap();
    let out = Command::new(testkit::curtin_dir().join("curtin"))
        .args(["block-meta", "simple"])
        .env("CONFIG", &cfg)
        .env("TARGET_MOUNT_POINT", t.path())
        .env("OUTPUT_FSTAB", t.fstab())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `deployer install` runs each stage as curtin does, the config coming from $CONFIG.
#[test]
fn curtin_block_meta_reads_config_from_env() {
    require_root();
    let d = LoopDisk::new(512 * MIB);
    let t = Target::new();
    curtin_block_meta_simple(
        &t,
        serde_json::json!({"block-meta": {"format": "gpt", "devices": [d.dev]}}),
    );
    assert_eq!(blkid(&d.part(1), "LABEL"), "cloudimg-rootfs");
    assert_eq!(
        sh(&format!("findmnt -rno SOURCE {}", t.path().display())).trim(),
        d.part(1).display().to_string()
    );
    assert!(std::fs::read_to_string(t.fstab())
        .unwrap()
        .contains("LABEL=cloudimg-rootfs / ext4"));
}

/// curtin's builtin partitioning command is `curtin block-meta simple`, and `deployer install`
/// runs it with MAAS's `storage` config: the storage config wins (custom mode), as in curtin.
#[test]
fn block_meta_simple_with_storage_config_is_custom() {
    require_root();
    let d = LoopDisk::new(512 * MIB);
    let t = Target::new();
    curtin_block_meta_simple(
        &t,
        serde_json::json!({"storage": {"version": 1, "config": [
            {"id": "d0", "type": "disk", "ptable": "gpt", "path": d.dev},
            {"id": "p1", "type": "partition", "device": "d0", "number": 1, "size": "100M"},
            {"id": "p2", "type": "partition", "device": "d0", "number": 2, "size": "300M"},
            {"id": "f2", "type": "format", "volume": "p2", "fstype": "ext4", "label": "mine"},
            {"id": "m2", "type": "mount", "device": "f2", "path": "/"}]}}),
    );
    let p = parts(&d.dev);
    assert_eq!(p.len(), 2, "{p:?}");
    assert_eq!(p[1].2, 300 * MIB / 512, "{p:?}");
    assert_eq!(blkid(&d.part(2), "LABEL"), "mine");
    assert_eq!(
        sh(&format!("findmnt -rno SOURCE {}", t.path().display())).trim(),
        d.part(2).display().to_string()
    );
    let fstab = std::fs::read_to_string(t.fstab()).unwrap();
    assert!(!fstab.contains("cloudimg-rootfs"), "{fstab}");
}

#[test]
fn storage_layers_are_checked_before_anything_is_written() {
    require_root();
    let d = LoopDisk::new(256 * MIB);
    sh(&format!(
        "sgdisk -o -n 1:2048:+64M {} >/dev/null",
        d.dev.display()
    ));
    d.partx();
    sh(&format!("mkfs.ext4 -q -F {}", d.part(1).display()));
    let before = d.read_at(0, 4 * MIB as usize);
    let t = Target::new();
    let head = format!(
        "storage:\n  version: 1\n  config:\n    - {{id: d, type: disk, path: {}, ptable: gpt}}\n    - {{id: p1, type: partition, device: d, size: 64M, flag: raid}}\n    - {{id: p2, type: partition, device: d, size: 64M, flag: raid}}\n",
        d.dev.display()
    );
    for (items, want) in [
        (
            "    - {id: vg, type: lvm_volgroup, name: vg0, devices: [md0]}\n    - {id: md0, type: raid, name: md0, raidlevel: 1, devices: [p1, p2]}\n",
            "lvm_volgroup 'vg': its devices 'md0' is listed after it",
        ),
        (
            "    - {id: md0, type: raid, name: md0, raidlevel: 1, devices: [p1, p2]}\n    - {id: mp, type: partition, device: md0, size: 16M}\n",
            "partition 'mp': raid 'md0' has no ptable",
        ),
        (
            "    - {id: bc, type: bcache, backing_device: p1, cache_device: p2}\n",
            "bcache 'bc': cache device 'p2' is 67108864 bytes; the kernel needs more than 512 buckets",
        ),
    ]
    .into_iter()
    .chain(
        // A kernel without md (this host's; the QEMU tests have it): refused before anything.
        (!std::path::Path::new("/proc/mdstat").exists()).then_some((
            "    - {id: md0, type: raid, name: md0, raidlevel: 1, devices: [p1, p2]}\n",
            "the storage config needs md (RAID), which the running kernel does not have",
        )),
    ) {
        let cfg = format!("{head}{items}");
        let out = block_meta(&cfg, &t.path(), &t.fstab(), &[]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(5), "{cfg}\n{err}");
        assert!(err.contains(want), "{want:?} not in {err}");
        assert_untouched(&d, &before);
    }
}

#[test]
fn msdos_lvm_and_raid_partitions_are_type_83_as_parted_leaves_them() {
    require_root();
    let d = LoopDisk::new(256 * MIB);
    let t = Target::new();
    let cfg = format!(
        "storage:\n  version: 1\n  config:\n    - {{id: d, type: disk, path: {}, ptable: msdos}}\n    - {{id: p1, type: partition, device: d, size: 64M, flag: lvm}}\n    - {{id: p2, type: partition, device: d, size: 64M, flag: raid}}\n    - {{id: p3, type: partition, device: d, size: 64M, flag: swap}}\n",
        d.dev.display()
    );
    block_meta_ok(&cfg, &t);
    let types: Vec<String> = parts(&d.dev).into_iter().map(|p| p.3).collect();
    assert_eq!(types, ["83", "83", "82"]);
}

#[test]
fn device_map_path_gets_every_device() {
    require_root();
    let d = LoopDisk::new(128 * MIB);
    let t = Target::new();
    let map = t.dir.path().join("devices.json");
    let cfg = format!(
        "storage:\n  version: 1\n  device_map_path: {}\n  config:\n    - {{id: d, type: disk, path: {}, ptable: gpt}}\n    - {{id: p1, type: partition, device: d, size: 32M}}\n",
        map.display(),
        d.dev.display()
    );
    block_meta_ok(&cfg, &t);
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&map).unwrap()).unwrap();
    assert_eq!(v["d"], serde_json::json!(d.dev.display().to_string()));
    assert_eq!(v["p1"], serde_json::json!(d.part(1).display().to_string()));
}

/// curtin's fstab details and sizes: pass 0 for a `nodev` file system (tmpfs), swap written
/// `sw` even when given `defaults`, the comment naming the mount's `spec` when it has one, and
/// a size that is not whole sectors rounded down (curtin's `bytes // sector_bytes`).
#[test]
fn fstab_and_sizes_as_curtin_writes_them() {
    require_root();
    let d = LoopDisk::new(512 * MIB);
    let t = Target::new();
    let cfg = format!(
        r#"
storage:
  version: 1
  config:
    - {{id: d, type: disk, path: {dev}, ptable: gpt}}
    - {{id: p1, type: partition, device: d, size: 104857700, number: 1}}
    - {{id: p2, type: partition, device: d, size: 64M, number: 2}}
    - {{id: root_fs, type: format, volume: p1, fstype: ext4, label: root}}
    - {{id: swap_fs, type: format, volume: p2, fstype: swap}}
    - {{id: root, type: mount, device: root_fs, path: /, spec: LABEL=root}}
    - {{id: swap, type: mount, device: swap_fs, path: none, options: defaults}}
    - {{id: tmp, type: mount, spec: tmpfs, fstype: tmpfs, path: /tmp, options: "size=1M"}}
"#,
        dev = d.dev.display()
    );
    let out = block_meta(&cfg, &t.path(), &t.fstab(), &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let p = parts(&d.dev);
    // 104857700 bytes = 204800 sectors and 100 bytes: 204800 sectors.
    assert_eq!((p[0].1, p[0].2), (2048, 204800));
    let swap_uuid = blkid(&d.part(2), "UUID");
    assert_eq!(
        std::fs::read_to_string(t.fstab()).unwrap(),
        format!(
            "# / was on LABEL=root during curtin installation\n\
             LABEL=root / ext4 defaults 0 1\n\
             /dev/disk/by-uuid/{swap_uuid} none swap sw 0 0\n\
             # /tmp was on tmpfs during curtin installation\n\
             tmpfs /tmp tmpfs size=1M 0 0\n"
        )
    );
    let mnt = sh(&format!(
        "findmnt -rn -o TARGET,FSTYPE -R {}",
        t.path().display()
    ));
    assert!(mnt.contains("/tmp tmpfs"), "{mnt}");
}

/// The file systems curtin's mkfs makes beyond the common ones (f2fs, jfs, ntfs, reiserfs),
/// with curtin's flags: the label (truncated to the family's limit) and, where the tool takes
/// one, the uuid.
#[test]
fn f2fs_jfs_ntfs_reiserfs_are_made_as_curtin_makes_them() {
    require_root();
    let d = LoopDisk::new(512 * MIB);
    let t = Target::new();
    let cfg = format!(
        r#"
storage:
  version: 1
  config:
    - {{id: d, type: disk, path: {dev}, ptable: gpt}}
    - {{id: p1, type: partition, device: d, size: 96M, number: 1}}
    - {{id: p2, type: partition, device: d, size: 96M, number: 2}}
    - {{id: p3, type: partition, device: d, size: 96M, number: 3}}
    - {{id: p4, type: partition, device: d, size: 96M, number: 4}}
    - {{id: f1, type: format, volume: p1, fstype: f2fs, label: flash, uuid: 0b1d2a63-6f4e-4d3c-9a51-0c6f2f1e8a10}}
    - {{id: f2, type: format, volume: p2, fstype: jfs, label: journal-label-longer-than-16}}
    - {{id: f3, type: format, volume: p3, fstype: ntfs, label: windows}}
    - {{id: f4, type: format, volume: p4, fstype: reiserfs, label: reiser, uuid: 5d3c9e1a-2b4f-4e6a-8c7d-9f0e1a2b3c4d}}
"#,
        dev = d.dev.display()
    );
    let out = block_meta(&cfg, &t.path(), &t.fstab(), &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: Vec<(String, String)> = (1..=4)
        .map(|i| (blkid(&d.part(i), "TYPE"), blkid(&d.part(i), "LABEL")))
        .collect();
    let want = [
        ("f2fs", "flash"),
        ("jfs", "journal-label-lo"),
        ("ntfs", "windows"),
        ("reiserfs", "reiser"),
    ];
    assert_eq!(
        got,
        want.map(|(a, b)| (a.to_string(), b.to_string())).to_vec()
    );
    assert_eq!(
        blkid(&d.part(1), "UUID"),
        "0b1d2a63-6f4e-4d3c-9a51-0c6f2f1e8a10"
    );
    assert_eq!(
        blkid(&d.part(4), "UUID"),
        "5d3c9e1a-2b4f-4e6a-8c7d-9f0e1a2b3c4d"
    );
}

/// `name` on a disk and a partition: by-dname udev rules as curtin's `make_dname` writes them,
/// in `$WORKING_DIR/rules.d` (curthooks copies them into the target), matching the table and
/// partition UUIDs blkid reports; GPT partition names as curtin v1 writes them (none).
#[test]
fn dname_rules_and_gpt_names_as_curtin_writes_them() {
    require_root();
    let d = LoopDisk::new(256 * MIB);
    let t = Target::new();
    let work = tempfile::tempdir().unwrap();
    let cfg = format!(
        r#"
storage:
  version: 1
  config:
    - {{id: d, type: disk, path: {dev}, ptable: gpt, name: main disk}}
    - {{id: p1, type: partition, device: d, size: 64M, number: 1, name: boot}}
    - {{id: p2, type: partition, device: d, size: 64M, number: 2}}
"#,
        dev = d.dev.display()
    );
    let out = block_meta_env(
        &cfg,
        &t.path(),
        &t.fstab(),
        &[],
        &[("WORKING_DIR", work.path())],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ptuuid = sh(&format!("blkid -o value -s PTUUID {}", d.dev.display()));
    let partuuid = sh(&format!(
        "blkid -o value -s PARTUUID {}",
        d.part(1).display()
    ));
    let partuuid = partuuid.trim();
    let rules = work.path().join("rules.d");
    // The name sanitized as curtin does: the space becomes '-'. A loop disk has no serial or
    // WWN: only the partition-table rule.
    assert_eq!(
        std::fs::read_to_string(rules.join("main-disk.rules")).unwrap(),
        format!(
            "# Written by curtin\nSUBSYSTEM==\"block\", ACTION==\"add|change\", ENV{{DEVTYPE}}==\"disk\", ENV{{ID_PART_TABLE_UUID}}==\"{}\", SYMLINK+=\"disk/by-dname/main-disk\"\n",
            ptuuid.trim()
        )
    );
    assert_eq!(
        std::fs::read_to_string(rules.join("boot.rules")).unwrap(),
        format!(
            "# Written by curtin\nSUBSYSTEM==\"block\", ACTION==\"add|change\", ENV{{DEVTYPE}}==\"partition\", ENV{{ID_PART_ENTRY_UUID}}==\"{partuuid}\", SYMLINK+=\"disk/by-dname/boot\"\n"
        )
    );
    assert_eq!(std::fs::read_dir(&rules).unwrap().count(), 2);
    // curtin v1 partitions with sgdisk --new and no --change-name: no GPT name.
    let info = sh(&format!("sgdisk -i 1 {}", d.dev.display()));
    assert!(info.contains("Partition name: ''"), "{info}");
}

/// Storage v2's `partition_type` and `uuid` (curtin's sfdisk `type=` and `uuid=`): written to
/// the table; v1 ignores them, as curtin v1 does; a type that is no GUID nor byte is refused.
#[test]
fn v2_partition_type_and_uuid_are_written() {
    require_root();
    let home = "933AC7E1-2EB4-4F13-B844-0E14E2AEF915";
    let mine = "0b2c3d4e-5f60-4718-8a9b-acbdcedf0011";
    for (version, ptable) in [(2, "gpt"), (2, "msdos"), (1, "gpt")] {
        let d = LoopDisk::new(128 * MIB);
        let t = Target::new();
        let ty = if ptable == "gpt" { home } else { "0x8e" };
        let cfg = format!(
            "storage:\n  version: {version}\n  config:\n    - {{id: d, type: disk, path: {dev}, ptable: {ptable}}}\n    - {{id: p1, type: partition, device: d, size: 32M, number: 1, partition_type: '{ty}', uuid: {mine}, attrs: [RequiredPartition, 'GUID:63']}}\n",
            dev = d.dev.display()
        );
        let out = block_meta_env(&cfg, &t.path(), &t.fstab(), &[], &[]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let json: serde_json::Value =
            serde_json::from_str(&sh(&format!("sfdisk --json {}", d.dev.display()))).unwrap();
        let p = &json["partitiontable"]["partitions"][0];
        let (want_ty, want_uuid) = match (version, ptable) {
            (2, "gpt") => (home.to_string(), Some(mine.to_uppercase())),
            (2, _) => ("8e".to_string(), None),
            _ => ("0FC63DAF-8483-4772-8E79-3D69D8477DE4".to_string(), None),
        };
        assert_eq!(
            p["type"].as_str().unwrap().to_uppercase(),
            want_ty.to_uppercase(),
            "{json}"
        );
        if (version, ptable) == (2, "gpt") {
            assert_eq!(p["attrs"], "RequiredPartition GUID:63", "{json}");
        } else {
            assert!(p.get("attrs").is_none(), "{json}");
        }
        match want_uuid {
            Some(u) => assert_eq!(p["uuid"].as_str().unwrap().to_uppercase(), u, "{json}"),
            None => assert_ne!(
                p["uuid"].as_str().map(str::to_uppercase),
                Some(mine.to_uppercase()),
                "{json}"
            ),
        }
    }
    let bad = "storage:\n  version: 2\n  config:\n    - {id: d, type: disk, path: /dev/null, ptable: gpt}\n    - {id: p1, type: partition, device: d, size: 32M, partition_type: linux}\n";
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(f.path(), bad).unwrap();
    let o = testkit::deployer()
        .args(["validate", "-c", f.path().to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("storage.config[1].partition_type") && err.contains("neither a GPT type GUID"),
        "{err}"
    );
}
