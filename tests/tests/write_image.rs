//! `deployer write-image`: every dd type byte for byte on loop devices, over a real HTTP
//! server that misbehaves, each error with its own message and no bootable leftovers, and
//! root growth on ext4 and xfs with a clean GPT afterwards.

use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use testkit::fixtures::build_disk;
use testkit::{require_root, sh, Fault, LoopDisk, Server};

const MIB: u64 = 1 << 20;

/// The fixture set: a GPT disk image (ESP with random bytes, ext4 root with /curtin and
/// random data, zero gaps) and every dd packaging of it. Cached under target/.
struct Fixtures {
    dir: PathBuf,
    image: Vec<u8>,
}

const TYPES: &[(&str, &str)] = &[
    ("dd-raw", "disk.img"),
    ("dd-gz", "disk.img.gz"),
    ("dd-xz", "disk.img.xz"),
    // Multi-block (xz -T): decoded block by block on several threads, out of order.
    ("dd-xz", "disk.img.mxz"),
    ("dd-bz2", "disk.img.bz2"),
    ("dd-zst", "disk.img.zst"),
    ("dd-tar", "disk.tar"),
    ("dd-tgz", "disk.tgz"),
    ("dd-tbz", "disk.tbz"),
    ("dd-txz", "disk.txz"),
];

fn fixtures() -> &'static Fixtures {
    static F: OnceLock<Fixtures> = OnceLock::new();
    F.get_or_init(|| {
        let dir = testkit::target_dir().join("dd-fixtures-v2");
        if !dir.join("done").exists() {
            let tmp = testkit::target_dir().join(format!("dd-fixtures-tmp-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&tmp);
            std::fs::create_dir_all(&tmp).unwrap();
            build_disk(&tmp, "disk.img", 48, "ext4");
            sh(&format!(
                "cd {} && gzip -k disk.img && xz -k -T1 disk.img && bzip2 -k disk.img && zstd -q -k disk.img \
                 && tar -cf disk.tar disk.img && gzip -c disk.tar > disk.tgz && bzip2 -c disk.tar > disk.tbz \
                 && xz -T1 -c disk.tar > disk.txz && xz -T2 -6 --block-size=4MiB -c disk.img > disk.img.mxz \
                 && touch done",
                tmp.display()
            ));
            let _ = std::fs::rename(&tmp, &dir);
            let _ = std::fs::remove_dir_all(&tmp);
        }
        let image = std::fs::read(dir.join("disk.img")).unwrap();
        Fixtures { dir, image }
    })
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("bad json ({e}): {}\n{}", self.stdout, self.stderr))
    }
}

fn write_image(args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut c = testkit::deployer();
    c.arg("write-image").args(args).env("RUST_LOG", "info");
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().expect("run deployer");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn ok(r: &Run) -> serde_json::Value {
    assert_eq!(r.code, 0, "write-image failed:\n{}", r.stderr);
    r.json()
}

fn dev(d: &LoopDisk) -> &str {
    d.dev.to_str().unwrap()
}

/// Fill the disk with a non-zero pattern, so that a zero run that was skipped without being
/// zeroed on the device would show.
fn fill_junk(d: &LoopDisk) {
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&d.dev)
        .unwrap();
    let junk = vec![0xA5u8; MIB as usize];
    for i in 0..d.size() / MIB {
        f.write_all_at(&junk, i * MIB).unwrap();
    }
    f.sync_all().unwrap();
}

fn assert_image_on(d: &LoopDisk, image: &[u8]) {
    let got = d.read_at(0, image.len());
    if let Some(i) = got.iter().zip(image).position(|(a, b)| a != b) {
        panic!("disk differs from the image at byte {i}");
    }
}

/// No partition table anywhere a firmware or the kernel would look: first and last MiB zero.
fn assert_not_bootable(d: &LoopDisk) {
    let first = d.read_at(0, MIB as usize);
    assert!(
        first.iter().all(|&b| b == 0),
        "the first MiB of the disk is not wiped"
    );
    let last = d.read_at(d.size() - MIB, MIB as usize);
    assert!(
        last.iter().all(|&b| b == 0),
        "the last MiB of the disk is not wiped"
    );
}

fn assert_root_found(j: &serde_json::Value, d: &LoopDisk) {
    assert_eq!(j["root"]["device"], d.part(2).to_str().unwrap(), "{j}");
    assert_eq!(j["root"]["marker"], "curtin", "{j}");
}

#[test]
fn every_dd_type_byte_exact_over_http() {
    require_root();
    let fx = fixtures();
    let srv = Server::start();
    for (ty, file) in TYPES {
        srv.serve_file(&format!("/{file}"), fx.dir.join(file));
        let d = LoopDisk::new(64 * MIB);
        fill_junk(&d);
        let src = format!("{ty}:{}", srv.url(&format!("/{file}")));
        let j = ok(&write_image(&[&src, dev(&d), "--no-grow", "--json"], &[]));
        assert_image_on(&d, &fx.image);
        assert_root_found(&j, &d);
        assert_eq!(j["detected_type"], *ty, "{j}");
        assert_eq!(j["image_size"], fx.image.len() as u64);
        assert_eq!(j["grown"], false);
        // The zero gaps were not written, yet read back as zeros (checked above).
        assert!(j["bytes_skipped"].as_u64().unwrap() > 20 * MIB, "{ty}: {j}");
    }
}

#[test]
fn file_path_and_checksums_detected_type() {
    require_root();
    let fx = fixtures();
    let gz = fx.dir.join("disk.img.gz");
    let bytes = std::fs::read(&gz).unwrap();
    use sha2::Digest;
    let sha256 = hex::encode(sha2::Sha256::digest(&bytes));
    let sha512 = hex::encode(sha2::Sha512::digest(&bytes));
    let size = bytes.len().to_string();
    let d = LoopDisk::new(64 * MIB);
    fill_junk(&d);
    // A bare path: the format is detected.
    let j = ok(&write_image(
        &[
            gz.to_str().unwrap(),
            dev(&d),
            "--sha256",
            &sha256,
            "--sha512",
            &sha512,
            "--size",
            &size,
            "--no-grow",
            "--json",
        ],
        &[],
    ));
    assert_image_on(&d, &fx.image);
    assert_eq!(j["detected_type"], "dd-gz");
    let d2 = LoopDisk::new(64 * MIB);
    let src = format!("dd-zst:file://{}", fx.dir.join("disk.img.zst").display());
    ok(&write_image(&[&src, dev(&d2), "--no-grow", "--json"], &[]));
    assert_image_on(&d2, &fx.image);
}

#[test]
fn image_file_target() {
    require_root();
    let fx = fixtures();
    let dir = tempfile::tempdir_in(testkit::loopdev::scratch_root()).unwrap();
    let out = dir.path().join("out.img");
    let src = format!("dd-xz:{}", fx.dir.join("disk.img.xz").display());
    let j = ok(&write_image(&[&src, out.to_str().unwrap(), "--json"], &[]));
    assert_eq!(std::fs::read(&out).unwrap(), fx.image);
    assert!(j["root"].is_null());
}

#[test]
fn http_cut_halfway_resumes_with_range() {
    require_root();
    let fx = fixtures();
    let srv = Server::start();
    let len = std::fs::metadata(fx.dir.join("disk.img.gz")).unwrap().len();
    srv.serve_file("/img.gz", fx.dir.join("disk.img.gz"));
    srv.fault("/img.gz", Fault::CutAfter(len / 2));
    let d = LoopDisk::new(64 * MIB);
    let j = ok(&write_image(
        &[
            &format!("dd-gz:{}", srv.url("/img.gz")),
            dev(&d),
            "--no-grow",
            "--json",
        ],
        &[],
    ));
    assert_image_on(&d, &fx.image);
    assert_eq!(j["bytes_read"], len);
    let reqs = srv.requests();
    let seen: Vec<_> = reqs
        .iter()
        .map(|r| (r.method.clone(), r.header("range").map(String::from)))
        .collect();
    assert_eq!(reqs.len(), 2, "one request, then one resume: {seen:?}");
    // From 64 KiB before the cut: the resume checks that those bytes are the ones it has.
    assert_eq!(
        reqs[1].header("range"),
        Some(format!("bytes={}-", len / 2 - (64 << 10)).as_str())
    );
}

#[test]
fn http_stall_resumes() {
    require_root();
    let fx = fixtures();
    let srv = Server::start();
    let len = std::fs::metadata(fx.dir.join("disk.img.zst"))
        .unwrap()
        .len();
    srv.serve_file("/img.zst", fx.dir.join("disk.img.zst"));
    srv.fault(
        "/img.zst",
        Fault::StallAfter(len / 3, Duration::from_secs(30)),
    );
    let d = LoopDisk::new(64 * MIB);
    let t = std::time::Instant::now();
    let r = write_image(
        &[
            &format!("dd-zst:{}", srv.url("/img.zst")),
            dev(&d),
            "--no-grow",
            "--json",
        ],
        &[("DEPLOYER_HTTP_STALL_SECS", "2")],
    );
    ok(&r);
    assert!(
        t.elapsed() < Duration::from_secs(25),
        "the stall was waited out, not detected"
    );
    assert_image_on(&d, &fx.image);
    let reqs = srv.requests();
    assert!(reqs.len() >= 2 && reqs.last().unwrap().header("range").is_some());
}

#[test]
fn http_500_then_recovers() {
    require_root();
    let fx = fixtures();
    let srv = Server::start();
    srv.serve_file("/img.bz2", fx.dir.join("disk.img.bz2"));
    srv.fault("/img.bz2", Fault::Status(500));
    srv.fault("/img.bz2", Fault::Status(503));
    let d = LoopDisk::new(64 * MIB);
    ok(&write_image(
        &[
            &format!("dd-bz2:{}", srv.url("/img.bz2")),
            dev(&d),
            "--no-grow",
            "--json",
        ],
        &[],
    ));
    assert_image_on(&d, &fx.image);
    let seen: Vec<_> = srv
        .requests()
        .iter()
        .map(|r| (r.method.clone(), r.header("range").map(String::from)))
        .collect();
    assert_eq!(seen.len(), 3, "{seen:?}");
}

/// A disk that already holds a complete, bootable image (so that a failed write has
/// something to destroy), and a snapshot of its ends.
fn disk_with_image() -> (LoopDisk, Vec<u8>, Vec<u8>) {
    let fx = fixtures();
    let d = LoopDisk::new(64 * MIB);
    ok(&write_image(
        &[
            fx.dir.join("disk.img").to_str().unwrap(),
            dev(&d),
            "--no-grow",
            "--json",
        ],
        &[],
    ));
    let first = d.read_at(0, MIB as usize);
    let last = d.read_at(d.size() - MIB, MIB as usize);
    assert!(first[512..520] == *b"EFI PART");
    (d, first, last)
}

fn assert_untouched(d: &LoopDisk, first: &[u8], last: &[u8]) {
    assert!(d.read_at(0, MIB as usize) == first, "the first MiB changed");
    assert!(
        d.read_at(d.size() - MIB, MIB as usize) == last,
        "the last MiB changed"
    );
}

fn fails(r: &Run, code: i32, needle: &str) {
    assert_eq!(r.code, code, "exit code; stderr:\n{}", r.stderr);
    assert!(
        r.stderr.contains(needle),
        "expected {needle:?} in:\n{}",
        r.stderr
    );
}

#[test]
fn mislabelled_type_is_refused_before_writing() {
    require_root();
    let fx = fixtures();
    let (d, first, last) = disk_with_image();
    let src = format!("dd-tgz:{}", fx.dir.join("disk.img.gz").display());
    let r = write_image(&[&src, dev(&d), "--json"], &[]);
    fails(&r, 4, "declared dd-tgz");
    assert!(
        r.stderr.contains("gzip-compressed disk image") && r.stderr.contains("use dd-gz:"),
        "{}",
        r.stderr
    );
    assert_untouched(&d, &first, &last);
    let src = format!("dd-raw:{}", fx.dir.join("disk.img.zst").display());
    fails(&write_image(&[&src, dev(&d)], &[]), 4, "use dd-zst:");
    let src = format!("dd-gz:{}", fx.dir.join("disk.tgz").display());
    fails(&write_image(&[&src, dev(&d)], &[]), 4, "use dd-tgz:");
    assert_untouched(&d, &first, &last);
}

#[test]
fn checksum_mismatch_wipes_the_tables() {
    require_root();
    let fx = fixtures();
    let (d, _, _) = disk_with_image();
    let src = format!("dd-gz:{}", fx.dir.join("disk.img.gz").display());
    let bad = "0".repeat(64);
    let r = write_image(&[&src, dev(&d), "--sha256", &bad], &[]);
    fails(&r, 4, "sha256 mismatch");
    assert_not_bootable(&d);
}

#[test]
fn truncated_stream_wipes_the_tables() {
    require_root();
    let fx = fixtures();
    let (d, _, _) = disk_with_image();
    let dir = tempfile::tempdir().unwrap();
    let gz = std::fs::read(fx.dir.join("disk.img.gz")).unwrap();
    let cut = dir.path().join("cut.gz");
    std::fs::write(&cut, &gz[..gz.len() * 2 / 3]).unwrap();
    let r = write_image(&[&format!("dd-gz:{}", cut.display()), dev(&d)], &[]);
    fails(&r, 4, "truncated");
    assert_not_bootable(&d);
}

#[test]
fn trailing_garbage_wipes_the_tables() {
    require_root();
    let fx = fixtures();
    let (d, _, _) = disk_with_image();
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("junk.zst");
    let mut f = std::fs::File::create(&p).unwrap();
    f.write_all(&std::fs::read(fx.dir.join("disk.img.zst")).unwrap())
        .unwrap();
    f.write_all(b"<html>oops</html>").unwrap();
    drop(f);
    let r = write_image(&[&format!("dd-zst:{}", p.display()), dev(&d)], &[]);
    fails(&r, 4, "trailing garbage");
    assert_not_bootable(&d);
}

/// The block-by-block xz decoder keeps every check of the sequential one: a corrupt block, a
/// cut stream, trailing garbage and an image larger than the disk each fail with their own
/// message, and the disk is left with no partition table.
#[test]
fn multi_block_xz_failures_wipe_the_tables() {
    require_root();
    let fx = fixtures();
    let mxz = std::fs::read(fx.dir.join("disk.img.mxz")).unwrap();
    let blocks = sh(&format!(
        "xz -lv {} | grep -m1 'Blocks:'",
        fx.dir.join("disk.img.mxz").display()
    ));
    let n: u32 = blocks.split_whitespace().last().unwrap().parse().unwrap();
    assert!(n > 4, "the fixture is multi-block: {blocks}");
    let dir = tempfile::tempdir().unwrap();
    let mut corrupt = mxz.clone();
    let mid = corrupt.len() / 2;
    corrupt[mid] ^= 0x55;
    let mut garbage = mxz.clone();
    garbage.extend_from_slice(b"<html>oops</html>");
    for (name, bytes, code, needle) in [
        (
            "corrupt.xz",
            &corrupt[..],
            4,
            "corrupt xz stream in the block at image byte",
        ),
        ("cut.xz", &mxz[..mxz.len() * 2 / 3], 4, "truncated"),
        ("garbage.xz", &garbage[..], 4, "trailing garbage"),
    ] {
        let (d, _, _) = disk_with_image();
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        let r = write_image(&[&format!("dd-xz:{}", p.display()), dev(&d)], &[]);
        fails(&r, code, needle);
        assert_not_bootable(&d);
    }
    let d = LoopDisk::new(32 * MIB);
    fill_junk(&d);
    let src = format!("dd-xz:{}", fx.dir.join("disk.img.mxz").display());
    fails(
        &write_image(&[&src, dev(&d)], &[]),
        5,
        "larger than the target",
    );
    assert_not_bootable(&d);
}

#[test]
fn target_too_small() {
    require_root();
    let fx = fixtures();
    let d = LoopDisk::new(32 * MIB);
    fill_junk(&d);
    let (first, last) = (
        d.read_at(0, MIB as usize),
        d.read_at(d.size() - MIB, MIB as usize),
    );
    // Known before writing (a raw image's length): nothing is touched.
    let src = format!("dd-raw:{}", fx.dir.join("disk.img").display());
    fails(
        &write_image(&[&src, dev(&d)], &[]),
        5,
        "larger than the target",
    );
    assert_untouched(&d, &first, &last);
    // Found while streaming: the write fails and the ends are wiped; the same storage error.
    let src = format!("dd-gz:{}", fx.dir.join("disk.img.gz").display());
    fails(
        &write_image(&[&src, dev(&d)], &[]),
        5,
        "larger than the target",
    );
    assert_not_bootable(&d);
}

#[test]
fn busy_target_is_refused() {
    require_root();
    let fx = fixtures();
    let (d, first, last) = disk_with_image();
    let mnt = tempfile::tempdir().unwrap();
    sh(&format!(
        "mount {} {}",
        d.part(2).display(),
        mnt.path().display()
    ));
    let _g = testkit::MountGuard(mnt.path().to_path_buf());
    let src = format!("dd-gz:{}", fx.dir.join("disk.img.gz").display());
    let r = write_image(&[&src, dev(&d)], &[]);
    fails(
        &r,
        5,
        &format!(
            "{}p2 is mounted at {}",
            d.dev.file_name().unwrap().to_str().unwrap(),
            mnt.path().display()
        ),
    );
    assert_untouched(&d, &first, &last);
}

#[test]
fn http_404_fails_at_once() {
    require_root();
    let (d, first, last) = disk_with_image();
    let srv = Server::start();
    let t = std::time::Instant::now();
    let r = write_image(&[&format!("dd-gz:{}", srv.url("/nope.gz")), dev(&d)], &[]);
    fails(&r, 4, "HTTP 404");
    assert!(t.elapsed() < Duration::from_secs(5));
    assert_eq!(srv.requests().len(), 1, "a 404 is not retried");
    assert_untouched(&d, &first, &last);
}

#[test]
fn failure_onto_a_new_image_file_leaves_no_file() {
    require_root();
    let fx = fixtures();
    let dir = tempfile::tempdir_in(testkit::loopdev::scratch_root()).unwrap();
    let srv = Server::start();
    let out = dir.path().join("new.img");
    let r = write_image(
        &[
            &format!("dd-gz:{}", srv.url("/nope.gz")),
            out.to_str().unwrap(),
        ],
        &[],
    );
    fails(&r, 4, "HTTP 404");
    assert!(!out.exists(), "a failed write left {}", out.display());
    // A checksum failure after the whole stream was written: the same.
    let src = format!("dd-xz:{}", fx.dir.join("disk.img.xz").display());
    let r = write_image(
        &[&src, out.to_str().unwrap(), "--sha256", &"0".repeat(64)],
        &[],
    );
    assert_ne!(r.code, 0);
    assert!(!out.exists(), "a failed write left {}", out.display());
    // An image file that was there before is kept (and wiped at both ends, as a disk is).
    std::fs::write(&out, vec![7u8; 1 << 20]).unwrap();
    let r = write_image(
        &[
            &format!("dd-gz:{}", srv.url("/nope.gz")),
            out.to_str().unwrap(),
        ],
        &[],
    );
    fails(&r, 4, "HTTP 404");
    assert_eq!(std::fs::read(&out).unwrap(), vec![7u8; 1 << 20]);
}

fn sgdisk_clean(d: &LoopDisk) {
    let out = sh(&format!("sgdisk -v {}", d.dev.display()));
    assert!(out.contains("No problems found"), "sgdisk -v:\n{out}");
}

fn part_size(d: &LoopDisk, n: u32) -> u64 {
    let name = d.part(n).file_name().unwrap().to_str().unwrap().to_string();
    let s = std::fs::read_to_string(format!("/sys/class/block/{name}/size")).unwrap();
    s.trim().parse::<u64>().unwrap() * 512
}

#[test]
fn grow_root_ext4() {
    require_root();
    let fx = fixtures();
    let d = LoopDisk::new(160 * MIB);
    let src = format!("dd-gz:{}", fx.dir.join("disk.img.gz").display());
    let j = ok(&write_image(&[&src, dev(&d), "--json"], &[]));
    assert_eq!(j["grown"], true, "{j}");
    assert_root_found(&j, &d);
    sgdisk_clean(&d);
    assert!(
        part_size(&d, 2) > 150 * MIB,
        "partition 2 is {} bytes",
        part_size(&d, 2)
    );
    let blocks = sh(&format!(
        "dumpe2fs -h {} 2>/dev/null | awk -F: '/^Block count/{{print $2}}'",
        d.part(2).display()
    ));
    let bs = sh(&format!(
        "dumpe2fs -h {} 2>/dev/null | awk -F: '/^Block size/{{print $2}}'",
        d.part(2).display()
    ));
    let fs_bytes = blocks.trim().parse::<u64>().unwrap() * bs.trim().parse::<u64>().unwrap();
    assert!(fs_bytes > 150 * MIB, "ext4 is {fs_bytes} bytes");
    sh(&format!("e2fsck -fn {}", d.part(2).display()));
}

#[test]
fn grow_root_xfs() {
    require_root();
    let dir = tempfile::tempdir_in(testkit::loopdev::scratch_root()).unwrap();
    build_disk(dir.path(), "xfs.img", 320, "xfs");
    let d = LoopDisk::new(400 * MIB);
    let src = format!("dd-raw:file://{}", dir.path().join("xfs.img").display());
    let j = ok(&write_image(&[&src, dev(&d), "--json"], &[]));
    assert_eq!(j["grown"], true, "{j}");
    assert_root_found(&j, &d);
    sgdisk_clean(&d);
    let mnt = tempfile::tempdir().unwrap();
    sh(&format!(
        "mount {} {}",
        d.part(2).display(),
        mnt.path().display()
    ));
    let _g = testkit::MountGuard(mnt.path().to_path_buf());
    // The data section, in 4 KiB blocks (df would subtract the 64 MiB internal log).
    let info = sh(&format!("xfs_info {}", mnt.path().display()));
    let blocks: u64 = info
        .lines()
        .find(|l| l.starts_with("data "))
        .and_then(|l| l.split("blocks=").nth(1))
        .and_then(|s| s.split(',').next())
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        blocks * 4096 > 390 * MIB,
        "xfs data is {} bytes:\n{info}",
        blocks * 4096
    );
    assert!(mnt.path().join("curtin").is_dir());
}

#[test]
fn root_not_last_is_not_grown() {
    require_root();
    let dir = tempfile::tempdir_in(testkit::loopdev::scratch_root()).unwrap();
    build_disk(dir.path(), "d.img", 48, "ext4");
    // Move the root first: add a 3rd partition after it by shrinking nothing: make the
    // image's partition 1 (ESP, no fs) the last one by renumbering is not possible, so append
    // a small partition behind a smaller root instead.
    let d = LoopDisk::new(96 * MIB);
    sh(&format!(
        "cd {} && truncate -s 64M d.img && sgdisk -e -n3:0:+4M -t3:8300 d.img >/dev/null",
        dir.path().display()
    ));
    let src = format!("dd-raw:{}", dir.path().join("d.img").display());
    let j = ok(&write_image(&[&src, dev(&d), "--json"], &[]));
    assert_eq!(j["grown"], false, "{j}");
    assert!(
        j["grow"]
            .as_str()
            .unwrap()
            .contains("not the last partition"),
        "{j}"
    );
    sgdisk_clean(&d);
}

#[test]
fn grow_root_msdos_ext4() {
    require_root();
    let dir = tempfile::tempdir_in(testkit::loopdev::scratch_root()).unwrap();
    let d0 = dir.path().display();
    sh(&format!(
        "cd {d0} && truncate -s 40M m.img && printf 'start=2048, size=8192, type=ef\\nstart=10240, type=83\\n' | sfdisk -q m.img \
         && mkdir -p root/curtin && truncate -s $((40*1024*1024 - 10240*512)) fs.img && mkfs.ext4 -q -d root fs.img \
         && dd if=fs.img of=m.img bs=512 seek=10240 conv=notrunc,sparse status=none"
    ));
    let d = LoopDisk::new(96 * MIB);
    let src = format!("dd-raw:{}", dir.path().join("m.img").display());
    let j = ok(&write_image(&[&src, dev(&d), "--json"], &[]));
    assert_eq!(j["grown"], true, "{j}");
    assert_root_found(&j, &d);
    assert!(
        part_size(&d, 2) > 90 * MIB,
        "partition 2 is {} bytes",
        part_size(&d, 2)
    );
    let table = sh(&format!("sfdisk -d {}", d.dev.display()));
    assert!(table.contains("start=       10240"), "{table}");
    sh(&format!("e2fsck -fn {}", d.part(2).display()));
}

#[test]
fn proxy_from_the_config() {
    require_root();
    let fx = fixtures();
    // The server plays the proxy: it is asked for the absolute URL of a host that does not
    // resolve, which only a proxied request can reach.
    let srv = Server::start();
    let url = "http://image.invalid/disk.img.gz";
    srv.serve_file(url, fx.dir.join("disk.img.gz"));
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("proxy.yaml");
    std::fs::write(&cfg, format!("proxy:\n  http_proxy: {}\n", srv.url(""))).unwrap();
    let d = LoopDisk::new(64 * MIB);
    let src = format!("dd-gz:{url}");
    ok(&write_image(
        &[
            &src,
            dev(&d),
            "--no-grow",
            "--json",
            "-c",
            cfg.to_str().unwrap(),
        ],
        &[],
    ));
    assert_image_on(&d, &fx.image);
    assert_eq!(srv.requests()[0].path, url);
}

#[test]
fn root_that_cannot_grow_is_left_as_made() {
    // A root filesystem deployer does not grow (NTFS in a Windows image; squashfs here, which
    // this host can mount): the install goes on with the partition as the image made it, and
    // the GPT's backup header still moves to the disk's end.
    require_root();
    let dir = tempfile::tempdir_in(testkit::loopdev::scratch_root()).unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir_all(root.join("curtin")).unwrap();
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::write(root.join("etc/os-release"), "ID=demo\n").unwrap();
    let img = dir.path().join("disk.img");
    let fs = dir.path().join("root.sqfs");
    sh(&format!(
        "mksquashfs {} {} -quiet -noappend && truncate -s 40M {} && sgdisk -o -n1:2048:+32M {} >/dev/null && dd if={} of={} bs=1M seek=1 conv=notrunc status=none",
        root.display(), fs.display(), img.display(), img.display(), fs.display(), img.display()
    ));
    let d = LoopDisk::new(160 * MIB);
    let j = ok(&write_image(
        &[&format!("dd-raw:{}", img.display()), dev(&d), "--json"],
        &[],
    ));
    assert_eq!(j["grown"], false, "{j}");
    let why = j["grow"].as_str().unwrap();
    assert!(
        why.contains("squashfs") && why.contains("does not grow"),
        "{why}"
    );
    assert_eq!(part_size(&d, 1), 32 * MIB);
    sgdisk_clean(&d);
}

#[test]
fn the_page_cache_under_the_target_is_found_only_where_there_is_one() {
    // Early writeback goes to the file whose page cache holds the writes: a buffered loop
    // device's backing file (the very inode, not a namesake), an image file itself; a loop
    // device doing direct I/O has none.
    use std::os::unix::fs::MetadataExt;
    require_root();
    let ino = |f: &std::fs::File| f.metadata().unwrap().ino();
    let d = LoopDisk::new(8 * MIB);
    let backing = std::fs::metadata(&d.file).unwrap().ino();
    let t = deployer::blockdev::open_target(&d.dev).unwrap();
    assert_eq!(t.page_cache.as_ref().map(ino), Some(backing));
    drop(t);
    sh(&format!("losetup --direct-io=on {}", d.dev.display()));
    let t = deployer::blockdev::open_target(&d.dev).unwrap();
    assert!(t.page_cache.is_none(), "a direct-I/O loop device");
    drop(t);
    let dir = tempfile::tempdir_in(testkit::loopdev::scratch_root()).unwrap();
    let img = dir.path().join("new.img");
    let t = deployer::blockdev::open_target(&img).unwrap();
    assert_eq!(t.page_cache.as_ref().map(ino), Some(ino(&t.file)));
}
