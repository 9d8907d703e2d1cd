//! The dd path of the partitioning stage: `curtin block-meta simple` run as `deployer install`
//! runs it (only $CONFIG, $TARGET_MOUNT_POINT... set) with a dd source writes the image to the
//! disk the storage config names, grows the root, mounts it at the target, and reports progress.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use testkit::fixtures::build_disk;
use testkit::{curtin_dir, require_root, sh, LoopDisk, MountGuard, Server};

const MIB: u64 = 1 << 20;

struct Fixture {
    dir: tempfile::TempDir,
    gz: PathBuf,
    sha256: String,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir_in(testkit::loopdev::scratch_root()).unwrap();
    build_disk(dir.path(), "disk.img", 48, "ext4");
    sh(&format!("gzip -k {}/disk.img", dir.path().display()));
    let gz = dir.path().join("disk.img.gz");
    let sha256 = sh(&format!("sha256sum {}", gz.display()))
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    Fixture { dir, gz, sha256 }
}

/// The fixture served over HTTP, a 256 MiB loop disk and a target directory unmounted on drop
/// (bind in this order: the guard drops first, then the disk).
fn setup() -> (Fixture, Server, LoopDisk, PathBuf, MountGuard) {
    let f = fixture();
    let srv = Server::start();
    srv.serve_file("/disk.img.gz", &f.gz);
    let disk = LoopDisk::new(256 * MIB);
    let target = f.dir.path().join("target");
    let guard = MountGuard(target.clone());
    (f, srv, disk, target, guard)
}

fn curtin(args: &[&str], config: &Path, target: &Path, envs: &[(&str, &str)]) -> Output {
    let mut c = Command::new(curtin_dir().join("curtin"));
    c.args(args)
        .env("CONFIG", config)
        .env("TARGET_MOUNT_POINT", target)
        .env("OUTPUT_FSTAB", config.with_extension("fstab"));
    for (k, v) in envs {
        c.env(k, v);
    }
    c.output().unwrap()
}

fn config(
    f: &Fixture,
    srv: &Server,
    disk: &LoopDisk,
    sha256: &str,
    extra: serde_json::Value,
) -> PathBuf {
    let mut cfg = serde_json::json!({
        "sources": {"00_img": {"type": "dd-gz", "uri": srv.url("/disk.img.gz"), "sha256": sha256}},
        // A MAAS-style storage config: only the grub_device disk counts for a dd image.
        "storage": {"version": 1, "config": [
            {"id": "sda", "type": "disk", "path": disk.dev, "grub_device": true, "ptable": "gpt"},
            {"id": "sda-part1", "type": "partition", "device": "sda", "size": "100M"},
            {"id": "sda-part1_format", "type": "format", "volume": "sda-part1", "fstype": "xfs"},
            {"id": "sda-part1_mount", "type": "mount", "device": "sda-part1_format", "path": "/"},
        ]},
        "reporting": {"maas": {"type": "webhook", "endpoint": srv.url("/status")}},
    });
    for (k, v) in extra.as_object().unwrap() {
        cfg[k] = v.clone();
    }
    let p = f.dir.path().join("config.json");
    std::fs::write(&p, cfg.to_string()).unwrap();
    p
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn dd_source_written_grown_mounted_and_reported() {
    require_root();
    let (f, srv, disk, target, _guard) = setup();
    let cfg = config(&f, &srv, &disk, &f.sha256, serde_json::json!({}));
    let out = curtin(
        &["block-meta", "simple"],
        &cfg,
        &target,
        &[
            ("CURTIN_REPORTSTACK", "cmd-install/stage-partitioning"),
            ("DEPLOYER_PROGRESS_INTERVAL", "0"),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));

    // The image's bytes: the ESP (partition 1) byte for byte.
    let image = std::fs::read(f.dir.path().join("disk.img")).unwrap();
    let esp = 2048 * 512..(2048 * 512 + 4 * MIB) as usize;
    assert!(disk.read_at(esp.start as u64, esp.len()) == image[esp.clone()]);
    // The root (partition 2, not the storage config's xfs) is mounted at the target.
    assert_eq!(
        sh(&format!("findmnt -rno SOURCE,FSTYPE {}", target.display())).trim(),
        format!("{} ext4", disk.part(2).display())
    );
    assert!(target.join("curtin").is_dir());
    assert_eq!(
        std::fs::read(target.join("data")).unwrap(),
        std::fs::read(f.dir.path().join("root/data")).unwrap()
    );
    // Grown: the root partition and its file system fill the 256 MiB disk.
    let size_kb: u64 = sh(&format!(
        "df -k --output=size {} | tail -1",
        target.display()
    ))
    .trim()
    .parse()
    .unwrap();
    assert!(size_kb > 200 * 1024, "root not grown: {size_kb} KiB");
    let part_sectors: u64 = sh(&format!("blockdev --getsz {}", disk.part(2).display()))
        .trim()
        .parse()
        .unwrap();
    assert!(part_sectors * 512 > 200 * MIB);

    // Progress events under the stage's name, with the byte count of the source.
    let events = srv.posted_json("/status");
    let progress: Vec<_> = events
        .iter()
        .filter(|e| e["event_type"] == "progress")
        .collect();
    assert!(!progress.is_empty(), "no progress events in {events:?}");
    let last = progress.last().unwrap();
    let gz_len = std::fs::metadata(&f.gz).unwrap().len();
    assert_eq!(last["progress"]["bytes"].as_u64(), Some(gz_len));
    // No `size` in the config: the total is the served length.
    assert_eq!(last["progress"]["total"].as_u64(), Some(gz_len));
    assert!(last["name"]
        .as_str()
        .unwrap()
        .starts_with("cmd-install/stage-partitioning"));

    // Unmount leaves nothing mounted.
    let out = curtin(&["block-meta", "--umount"], &cfg, &target, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        sh(&format!("findmnt -rn -R {} || true", target.display())),
        ""
    );
}

#[test]
fn dd_source_grow_off_and_bad_checksum() {
    require_root();
    let (f, srv, disk, target, _guard) = setup();

    // A wrong sha256: the stage fails naming the checksum, nothing is mounted, no table left.
    let bad = "0".repeat(64);
    let cfg = config(&f, &srv, &disk, &bad, serde_json::json!({}));
    let out = curtin(&["block-meta", "simple"], &cfg, &target, &[]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("sha256"), "{}", stderr(&out));
    assert_eq!(
        sh(&format!("findmnt -rn -R {} || true", target.display())),
        ""
    );
    assert!(disk.read_at(512, 8) != *b"EFI PART");

    // grow_root: false keeps the image's layout: the root ends where the image ended.
    let cfg = config(
        &f,
        &srv,
        &disk,
        &f.sha256,
        serde_json::json!({"block-meta": {"grow_root": false}}),
    );
    let out = curtin(&["block-meta", "simple"], &cfg, &target, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let part_sectors: u64 = sh(&format!("blockdev --getsz {}", disk.part(2).display()))
        .trim()
        .parse()
        .unwrap();
    assert!(part_sectors * 512 < 48 * MIB);
    assert!(target.join("curtin").is_dir());
}
