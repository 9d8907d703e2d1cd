//! Bad input refused before a byte is written (issue 16, items 7, 8 and 16): a source that is
//! not a disk image (an HTML error page served with 200, a 100-byte file), a malformed
//! `--sha256`/`--sha512`, an image too big for its target (the same exit code from a path and
//! from HTTP), and an image with no root (the ends wiped after the failure).

use std::path::{Path, PathBuf};

use testkit::fixtures::build_disk;
use testkit::{require_root, sh, LoopDisk, Server};

const MIB: u64 = 1 << 20;

struct Run {
    code: i32,
    stderr: String,
}

fn write_image(args: &[&str]) -> Run {
    let out = testkit::deployer()
        .arg("write-image")
        .args(args)
        .output()
        .expect("run deployer");
    Run {
        code: out.status.code().unwrap_or(-1),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn fails(r: &Run, code: i32, needles: &[&str]) {
    assert_eq!(r.code, code, "exit code; stderr:\n{}", r.stderr);
    for n in needles {
        assert!(r.stderr.contains(n), "expected {n:?} in:\n{}", r.stderr);
    }
}

/// A disk holding a bootable image, and its two ends, to show that nothing was touched.
struct Loaded {
    disk: LoopDisk,
    first: Vec<u8>,
    last: Vec<u8>,
    _work: tempfile::TempDir,
    image: PathBuf,
}

fn loaded_disk() -> Loaded {
    let work = tempfile::tempdir_in(testkit::loopdev::scratch_root()).unwrap();
    build_disk(work.path(), "disk.img", 24, "ext4");
    let image = work.path().join("disk.img");
    let disk = LoopDisk::new(48 * MIB);
    let r = write_image(&[image.to_str().unwrap(), dev(&disk), "--no-grow"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let first = disk.read_at(0, MIB as usize);
    let last = disk.read_at(disk.size() - MIB, MIB as usize);
    assert!(first[512..520] == *b"EFI PART");
    Loaded {
        disk,
        first,
        last,
        _work: work,
        image,
    }
}

impl Loaded {
    fn untouched(&self, what: &str) {
        assert!(
            self.disk.read_at(0, MIB as usize) == self.first,
            "{what}: the first MiB changed"
        );
        assert!(
            self.disk.read_at(self.disk.size() - MIB, MIB as usize) == self.last,
            "{what}: the last MiB changed"
        );
    }
}

fn dev(d: &LoopDisk) -> &str {
    d.dev.to_str().unwrap()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p.display().to_string()
}

const PAGE: &[u8] = b"<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head>\n<body>upstream error</body></html>\n";

#[test]
fn data_that_is_not_a_disk_image_is_refused_before_writing() {
    require_root();
    let l = loaded_disk();
    let srv = Server::start();
    srv.serve_bytes("/image", PAGE.to_vec());
    let dir = tempfile::tempdir().unwrap();
    let small = write(dir.path(), "small.img", &[b'x'; 100]);

    // An HTML error page served with 200, bare and declared dd-raw.
    for src in [srv.url("/image"), format!("dd-raw:{}", srv.url("/image"))] {
        let r = write_image(&[&src, dev(&l.disk)]);
        fails(
            &r,
            4,
            &[
                "the source is not a disk image",
                &format!("an HTML page of {} bytes", PAGE.len()),
                "502 Bad Gateway",
                "--raw-data",
            ],
        );
        l.untouched(&src);
    }
    // A 100-byte file, and a gzip of it (decoded, it is still no disk image).
    let r = write_image(&[&small, dev(&l.disk)]);
    fails(&r, 4, &["not a disk image", "text of 100 bytes"]);
    sh(&format!("gzip -k {small}"));
    let r = write_image(&[&format!("dd-gz:{small}.gz"), dev(&l.disk)]);
    fails(&r, 4, &["not a disk image", "text of 100 bytes"]);
    l.untouched("the small file");

    // Deliberate raw data is written as it is, and no root is looked for.
    let r = write_image(&[&small, dev(&l.disk), "--raw-data"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(l.disk.read_at(0, 100), vec![b'x'; 100]);
    assert!(r.stderr.contains("raw data"), "{}", r.stderr);
}

#[test]
fn an_image_without_a_root_is_wiped_after_the_failure() {
    require_root();
    let l = loaded_disk();
    // A GPT with one empty partition: a table, no filesystem, so no root.
    let dir = tempfile::tempdir_in(testkit::loopdev::scratch_root()).unwrap();
    let img = dir.path().join("noroot.img");
    sh(&format!(
        "truncate -s 8M {i} && sgdisk -o -n1:2048:0 {i} >/dev/null",
        i = img.display()
    ));
    let r = write_image(&[img.to_str().unwrap(), dev(&l.disk)]);
    fails(&r, 7, &["did not find any filesystem"]);
    let first = l.disk.read_at(0, MIB as usize);
    assert!(first.iter().all(|&b| b == 0), "the first MiB is not wiped");
    let last = l.disk.read_at(l.disk.size() - MIB, MIB as usize);
    assert!(last.iter().all(|&b| b == 0), "the last MiB is not wiped");
}

#[test]
fn malformed_digests_are_refused_before_the_download() {
    require_root();
    let l = loaded_disk();
    let srv = Server::start();
    srv.serve_file("/disk.img", &l.image);
    let url = srv.url("/disk.img");
    let cases: [(&str, String, &str); 4] = [
        (
            "--sha256",
            "abc".into(),
            "--sha256: must be 64 hex digits, got 'abc'",
        ),
        (
            "--sha256",
            "g".repeat(64),
            "--sha256: must be 64 hex digits",
        ),
        (
            "--sha512",
            "0".repeat(64),
            "--sha512: must be 128 hex digits",
        ),
        (
            "--sha512",
            "a".repeat(129),
            "--sha512: must be 128 hex digits",
        ),
    ];
    for (flag, value, needle) in cases {
        let r = write_image(&[&url, dev(&l.disk), flag, &value]);
        fails(&r, 2, &[needle]);
    }
    assert!(srv.requests().is_empty(), "the image was requested");
    l.untouched("bad digests");
}

#[test]
fn an_image_too_big_is_the_same_storage_error_from_a_path_and_from_http() {
    require_root();
    let l = loaded_disk();
    let small = LoopDisk::new(16 * MIB);
    let before = small.read_at(0, MIB as usize);
    let srv = Server::start();
    srv.serve_file("/disk.img", &l.image);
    let path = l.image.display().to_string();
    for src in [
        path.clone(),
        format!("dd-raw:{path}"),
        srv.url("/disk.img"),
        format!("dd-raw:{}", srv.url("/disk.img")),
    ] {
        let r = write_image(&[&src, dev(&small)]);
        fails(&r, 5, &["is larger than the target"]);
        assert!(
            small.read_at(0, MIB as usize) == before,
            "{src}: the disk was written"
        );
    }
}

fn validate(dir: &Path, text: &str) -> (i32, String) {
    let p = dir.join("c.yaml");
    std::fs::write(&p, text).unwrap();
    let out = testkit::deployer()
        .arg("validate")
        .arg("-c")
        .arg(&p)
        .env_remove("CONFIG")
        .output()
        .expect("run deployer");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn config_mistakes_name_the_key_and_the_allowed_values() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("c.yaml").display().to_string();
    let cases: &[(&str, &str)] = &[
        (
            "storage: {version: 1, config: [{id: d, type: disk, ptable: 5, path: /dev/null}]}\n",
            "storage.config[0].ptable: unknown partition table type 5 (one of: gpt, msdos (or dos), vtoc, unsupported)",
        ),
        (
            "network: {version: x}\n",
            ":1:20: network.version: 'x' is not a network config version (1 or 2)",
        ),
        (
            "sources: {00_cmdline: 'ddraw:http://h/disk.img'}\n",
            "sources.00_cmdline: unknown source prefix 'ddraw:' in 'ddraw:http://h/disk.img' (known prefixes: tgz:",
        ),
    ];
    for (cfg, needle) in cases {
        let (code, err) = validate(dir.path(), cfg);
        assert_eq!(code, 2, "{cfg}: {err}");
        assert!(
            err.contains(&f) && err.contains(needle),
            "{cfg}: expected {needle:?} in {err}"
        );
    }
    // The same unknown prefix on write-image's command line, before anything is opened.
    let target = dir.path().join("disk.img");
    let r = write_image(&["ddraw:/nonexistent", target.to_str().unwrap()]);
    fails(&r, 2, &["unknown source prefix 'ddraw:'", "dd-raw:"]);
    assert!(!target.exists());
}

#[test]
fn a_config_nested_100000_deep_is_refused_before_parsing() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("c.yaml").display().to_string();
    let n = 100_000;
    let flow = format!("late_commands: {}{}\n", "[".repeat(n), "]".repeat(n));
    let (code, err) = validate(dir.path(), &flow);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(&format!(
            "{f}:1:1015: nested 1001 levels deep here, more than 1000 allowed"
        )),
        "{err}"
    );
    let block: String = (0..n)
        .map(|i| format!("{}k{i}:\n", " ".repeat(i % 5000)))
        .collect();
    let (code, err) = validate(dir.path(), &block);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(&format!("{f}:1001:1001: nested 1001 levels")),
        "{err}"
    );
}
