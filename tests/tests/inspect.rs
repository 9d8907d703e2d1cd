//! `deployer inspect`: on small real images the tests build (GPT disk images made with sgdisk
//! and `mkfs.ext4 -d`, root tarballs), what a user would check: the verdict lines, the exit
//! code, the JSON document, the image file unchanged, nothing left attached or mounted.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use std::process::Command;

use testkit::inspect::inspect;
use testkit::{require_root, sh, Server};

fn scratch() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("deployer-inspect-test-")
        .tempdir_in(testkit::loopdev::scratch_root())
        .unwrap()
}

/// A root tree MAAS would deploy (files are stubs: inspect reads, it never runs them).
fn good_root(dir: &Path) {
    let files: &[(&str, &str, u32)] = &[
        (
            "etc/os-release",
            "PRETTY_NAME=\"Ubuntu 24.04 LTS\"\nID=ubuntu\nID_LIKE=debian\nVERSION_ID=\"24.04\"\nVERSION_CODENAME=noble\n",
            0o644,
        ),
        ("usr/bin/cloud-init", "#!/usr/bin/python3\n", 0o755),
        ("usr/sbin/netplan", "#!/usr/bin/python3\n", 0o755),
        (
            "usr/lib/python3/dist-packages/cloudinit/version.py",
            "__VERSION__ = \"24.4.1\"\nFEATURES = [\"NETWORK_CONFIG_V1\", \"NETWORK_CONFIG_V2\"]\n",
            0o644,
        ),
        ("usr/sbin/grub-install", "#!/bin/sh\n", 0o755),
        ("usr/lib/grub/x86_64-efi/modinfo.sh", "", 0o644),
        ("boot/vmlinuz-6.8.0-31-generic", "kernel", 0o644),
        ("boot/initrd.img-6.8.0-31-generic", "initrd", 0o644),
    ];
    for (p, text, mode) in files {
        let f = dir.join(p);
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(&f, text).unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(*mode)).unwrap();
    }
    std::fs::create_dir_all(dir.join("curtin")).unwrap();
}

/// A GPT disk image: each partition `(MiB, sgdisk type code, content)`, where the content is
/// an ext4 filesystem made from a directory, or raw bytes at the partition's start.
enum Content<'a> {
    Ext4(&'a Path),
    Bytes(Vec<u8>),
    Empty,
}

fn gpt_image(path: &Path, parts: &[(u64, &str, Content)]) {
    let total: u64 = parts.iter().map(|p| p.0).sum::<u64>() + 2;
    sh(&format!("truncate -s {}M {}", total, path.display()));
    let mut args = String::from("-o");
    for (i, (mib, code, _)) in parts.iter().enumerate() {
        let n = i + 1;
        args.push_str(&format!(" -n {n}:0:+{mib}M -t {n}:{code} -c {n}:part{n}"));
    }
    sh(&format!("sgdisk {args} {} >/dev/null", path.display()));
    for (i, (_, _, content)) in parts.iter().enumerate() {
        let info = sh(&format!("sgdisk -i {} {}", i + 1, path.display()));
        let sector = |key: &str| -> u64 {
            let l = info.lines().find(|l| l.starts_with(key)).unwrap();
            l.split_whitespace().nth(2).unwrap().parse().unwrap()
        };
        let (first, last) = (sector("First sector:"), sector("Last sector:"));
        let at = first * 512;
        match content {
            Content::Ext4(dir) => {
                let fs = path.with_extension(format!("p{}", i + 1));
                sh(&format!(
                    "truncate -s {} {}",
                    (last - first + 1) * 512,
                    fs.display()
                ));
                sh(&format!(
                    "mkfs.ext4 -q -L root{} -d {} {}",
                    i + 1,
                    dir.display(),
                    fs.display()
                ));
                sh(&format!(
                    "dd if={} of={} bs=1M oflag=seek_bytes seek={at} conv=notrunc,sparse status=none && rm {}",
                    fs.display(),
                    path.display(),
                    fs.display()
                ));
            }
            Content::Bytes(b) => {
                use std::os::unix::fs::FileExt;
                let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
                f.write_all_at(b, at).unwrap();
            }
            Content::Empty => {}
        }
    }
}

fn sha(path: &Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(path).unwrap()))
}

/// Nothing of ours left: no loop device on the image (a partition still mounted would keep
/// its loop device, and so this image, attached).
fn nothing_left(image: &Path) {
    let l = sh(&format!("losetup -j {}", image.display()));
    assert!(l.trim().is_empty(), "still attached: {l}");
}

#[test]
fn raw_image_whose_root_is_not_last_will_not_grow() {
    require_root();
    let d = scratch();
    let root = d.path().join("root");
    good_root(&root);
    let data = d.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let img = d.path().join("disk.img");
    gpt_image(
        &img,
        &[
            (1, "EF02", Content::Empty),
            (24, "8300", Content::Ext4(&root)),
            (8, "8300", Content::Ext4(&data)),
        ],
    );
    let before = sha(&img);
    let r = inspect(&[img.to_str().unwrap(), "--filetype", "ddraw"], &[]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(r.line("format").starts_with("ok"));
    assert!(r.line("format").contains("upload it with filetype ddraw"));
    assert!(r.line("filetype").starts_with("ok"));
    assert!(r.line("partition-table").contains("GPT with 3 partitions"));
    assert!(
        r.line("partition 2").contains("ext4 'root2'"),
        "{}",
        r.stdout
    );
    assert!(r.line("root").contains("partition 2 holds /curtin"));
    let grow = r.line("root-grow");
    assert!(grow.starts_with("warning"), "{grow}");
    assert!(
        grow.contains(
            "root will not grow: partition 2 is not the last partition (partition 3 follows)"
        ),
        "{grow}"
    );
    // No loader in the image (boot code, ESP): the builtin curthooks' grub-install must do it.
    assert!(r.line("firmware").starts_with("warning"));
    assert!(r.line("bootloader").starts_with("ok"));
    assert!(r
        .line("cloud-init")
        .contains("cloud-init 24.4.1, takes network config v2"));
    assert!(r
        .stdout
        .ends_with("verdict: warning (MAAS would deploy it, with the warnings above)\n"));
    assert_eq!(sha(&img), before, "inspect changed the image");
    nothing_left(&img);

    let r = inspect(&[img.to_str().unwrap(), "--json"], &[]);
    assert_eq!(r.code, 1);
    let j: serde_json::Value = serde_json::from_str(&r.stdout).expect("one JSON document");
    assert_eq!(j["schema"], "deployer-inspect/1");
    assert_eq!(j["verdict"], "warning");
    assert_eq!(j["facts"]["filetype"], "ddraw");
    assert_eq!(j["facts"]["root"]["partition"], 2);
    assert_eq!(j["facts"]["root"]["curtin_rule"], 2);
    assert_eq!(j["facts"]["root"]["last"], false);
    assert_eq!(j["facts"]["partitions"][1]["fstype"], "ext4");
    assert_eq!(j["facts"]["os"]["id"], "ubuntu");
    let grow = j["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == "root-grow")
        .unwrap();
    assert_eq!(grow["verdict"], "warning");
}

#[test]
fn gzip_image_over_http_declared_ddtgz_names_ddgz() {
    require_root();
    let d = scratch();
    let root = d.path().join("root");
    good_root(&root);
    let img = d.path().join("disk.img");
    gpt_image(
        &img,
        &[
            (1, "EF02", Content::Empty),
            (24, "8300", Content::Ext4(&root)),
        ],
    );
    sh(&format!("gzip -1 -k {}", img.display()));
    let gz = d.path().join("disk.img.gz");
    let srv = Server::start();
    srv.serve_file("/root-dd.gz", &gz);
    let url = srv.url("/root-dd.gz");
    let r = inspect(&[&url, "--filetype", "ddtgz"], &[]);
    assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
    let ft = r.line("filetype");
    assert!(ft.starts_with("error"), "{ft}");
    assert!(ft.contains("declared ddtgz"), "{ft}");
    assert!(ft.contains("upload it with filetype ddgz"), "{ft}");
    // The rest was inspected all the same: the root is found in the decompressed copy.
    assert!(r.line("root").contains("partition 2 holds /curtin"));
    assert!(r.line("root-grow").starts_with("ok"));
    // Declared right, it passes.
    let r = inspect(&[&url, "--filetype", "ddgz"], &[]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr); // only the missing loader warns
    assert!(r.line("filetype").starts_with("ok"));

    // The same disk in a gzip tar (MAAS's ddtgz): detected as such, and read through the tar.
    sh(&format!(
        "cd {} && tar -cf - disk.img | gzip -1 > disk.tgz",
        d.path().display()
    ));
    let r = inspect(&[d.path().join("disk.tgz").to_str().unwrap()], &[]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(r.line("format").contains(
        "a gzip-compressed tar archive holding a disk image: upload it with filetype ddtgz"
    ));
    assert!(r.line("root").contains("partition 2 holds /curtin"));
}

#[test]
fn compressed_image_with_tmpdir_on_tmpfs_is_refused() {
    require_root();
    let d = scratch();
    let img = d.path().join("disk.img");
    gpt_image(&img, &[(4, "8300", Content::Empty)]);
    sh(&format!("gzip -1 {}", img.display()));
    let gz = d.path().join("disk.img.gz");
    let shm = tempfile::tempdir_in("/dev/shm").unwrap();
    let r = inspect(
        &[gz.to_str().unwrap()],
        &[("TMPDIR", shm.path().to_str().unwrap())],
    );
    assert_ne!(r.code, 0);
    assert!(r.stdout.is_empty(), "{}", r.stdout);
    assert!(
        r.stderr.contains("is a RAM filesystem (tmpfs)") && r.stderr.contains("set TMPDIR"),
        "{}",
        r.stderr
    );
    assert_eq!(std::fs::read_dir(shm.path()).unwrap().count(), 0);
}

/// LVM2's label checksum (lvm's `calc_crc`: CRC-32 without the final inversion, seeded).
fn lvm_crc(buf: &[u8]) -> u32 {
    let mut crc: u32 = 0xf597a6cf;
    for b in buf {
        crc ^= *b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xedb88320
            } else {
                crc >> 1
            };
        }
    }
    crc
}

/// The first sectors of an LVM2 physical volume: label (sector 1) and PV header, as blkid
/// recognises them (`LVM2_member`).
fn lvm_pv() -> Vec<u8> {
    let mut b = vec![0u8; 4096];
    let l = 512;
    b[l..l + 8].copy_from_slice(b"LABELONE");
    b[l + 8..l + 16].copy_from_slice(&1u64.to_le_bytes());
    b[l + 20..l + 24].copy_from_slice(&32u32.to_le_bytes());
    b[l + 24..l + 32].copy_from_slice(b"LVM2 001");
    b[l + 32..l + 64].copy_from_slice(b"0123456789abcdefghijklmnopqrstuv");
    let crc = lvm_crc(&b[l + 20..l + 512]);
    b[l + 16..l + 20].copy_from_slice(&crc.to_le_bytes());
    b
}

#[test]
fn lvm_root_is_not_inspected_yet() {
    require_root();
    let d = scratch();
    let img = d.path().join("disk.img");
    gpt_image(
        &img,
        &[
            (1, "EF02", Content::Empty),
            (8, "8E00", Content::Bytes(lvm_pv())),
        ],
    );
    let r = inspect(&[img.to_str().unwrap()], &[]);
    assert!(
        r.line("partition 2").contains("LVM2_member"),
        "{}",
        r.stdout
    );
    let root = r.line("root");
    assert!(root.starts_with("warning"), "{root}");
    assert!(root.contains("LVM root: not inspected yet"), "{root}");
    assert!(
        root.contains("partition 2 is an LVM physical volume"),
        "{root}"
    );
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    nothing_left(&img);
}

/// A gzip root tarball of `dir`, as packer-maas makes them (`tar -C root .`).
fn tgz(dir: &Path, out: &Path) {
    sh(&format!(
        "tar -C {} -czf {} .",
        dir.display(),
        out.display()
    ));
}

#[test]
fn python_hook_importing_a_symbol_nobody_provides_is_an_error() {
    let d = scratch();
    let root = d.path().join("root");
    good_root(&root);
    let hook = root.join("curtin/curtin-hooks");
    std::fs::write(
        &hook,
        "#!/usr/bin/env python3\n\
         import sys\n\
         from curtin.util import load_command_environment\n\
         from curtin.commands.curthooks import (\n    builtin_curthooks,\n    frobnicate_disks,\n)\n\
         \n\
         env = load_command_environment()\n",
    )
    .unwrap();
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = d.path().join("root.tgz");
    tgz(&root, &out);
    let r = inspect(
        &[out.to_str().unwrap(), "--base-image", "ubuntu/noble"],
        &[],
    );
    assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
    let h = r.line("hook curtin-hooks");
    assert!(h.starts_with("error"), "{h}");
    assert!(
        h.contains("imports curtin.commands.curthooks.frobnicate_disks (line 4)"),
        "{h}"
    );
    assert!(
        h.contains("which deployer's embedded curtin does not provide"),
        "{h}"
    );
    assert!(!h.contains("builtin_curthooks"), "{h}");
    assert!(r.line("base-image").contains("the image's own release"));
    assert!(r.stdout.contains(
        "curthooks: the image's /curtin/curtin-hooks (python3) runs instead of the builtin hooks"
    ));

    // The same hook with real symbols only, but not executable: the mode is the error.
    std::fs::write(
        &hook,
        "#!/usr/bin/env python3\nfrom curtin.commands.curthooks import builtin_curthooks\n",
    )
    .unwrap();
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o644)).unwrap();
    tgz(&root, &out);
    let r = inspect(&[out.to_str().unwrap()], &[]);
    let h = r.line("hook curtin-hooks");
    assert!(h.contains("is not executable (mode 644)"), "{h}");
    assert_eq!(r.code, 2);

    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    tgz(&root, &out);
    let r = inspect(&[out.to_str().unwrap(), "--json"], &[]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let j: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(j["facts"]["layout"], "root-tarball");
    assert_eq!(j["facts"]["hooks"][0]["language"], "python");
    assert_eq!(
        j["facts"]["hooks"][0]["curtin_imports"][0]["symbol"],
        "builtin_curthooks"
    );
    assert_eq!(
        j["facts"]["hooks"][0]["curtin_imports"][0]["provided"],
        true
    );
}

#[test]
fn not_an_image_and_unreadable_paths() {
    let d = scratch();
    let junk = d.path().join("junk.bin");
    std::fs::write(&junk, vec![7u8; 64 << 10]).unwrap();
    let r = inspect(&[junk.to_str().unwrap()], &[]);
    assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
    assert!(r
        .line("format")
        .contains("neither a tar archive nor a disk image"));

    let missing: PathBuf = d.path().join("nope.img");
    let r = inspect(&[missing.to_str().unwrap()], &[]);
    assert_eq!(r.code, 4, "{}", r.stderr);
    assert!(r.stderr.contains("opening the image"), "{}", r.stderr);

    let r = inspect(&[junk.to_str().unwrap(), "--base-image", "debian/12"], &[]);
    assert!(r.line("base-image").contains("MAAS's upload refuses it"));
}

#[test]
fn broken_hooks_and_archives() {
    let d = scratch();
    let root = d.path().join("root");
    good_root(&root);
    // finalize without a #! line; network-config a link to nothing.
    let fin = root.join("curtin/finalize");
    std::fs::write(&fin, "echo finalizing\n").unwrap();
    std::fs::set_permissions(&fin, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::symlink("net.sh", root.join("curtin/network-config")).unwrap();
    let out = d.path().join("root.tgz");
    tgz(&root, &out);
    let r = inspect(&[out.to_str().unwrap()], &[]);
    assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.line("hook finalize").contains("has no #! line"),
        "{}",
        r.stdout
    );
    let n = r.line("hook network-config");
    assert!(n.starts_with("error"), "{n}");
    assert!(
        n.contains("(a link to net.sh) points at nothing in the image"),
        "{n}"
    );

    // A tarball cut short: the archive cannot be read to its end.
    let bytes = std::fs::read(&out).unwrap();
    let cut = d.path().join("cut.tgz");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let r = inspect(&[cut.to_str().unwrap()], &[]);
    assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.line("format").contains("cannot be read to its end"),
        "{}",
        r.stdout
    );

    // Garbage after the gzip stream (curtin's tar fails on it).
    let mut tail = bytes.clone();
    tail.extend_from_slice(b"GARBAGE!");
    let junk = d.path().join("junk.tgz");
    std::fs::write(&junk, &tail).unwrap();
    let r = inspect(&[junk.to_str().unwrap()], &[]);
    assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
    let f = r.line("format");
    assert!(
        f.starts_with("error") && f.contains("trailing garbage"),
        "{f}"
    );
}

#[test]
fn mbr_signature_without_partitions_has_no_table() {
    require_root();
    let d = scratch();
    let img = d.path().join("disk.img");
    let mut b = vec![0u8; 4 << 20];
    b[510] = 0x55;
    b[511] = 0xaa;
    std::fs::write(&img, &b).unwrap();
    let r = inspect(&[img.to_str().unwrap()], &[]);
    assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.line("partition-table").contains("no partition table"),
        "{}",
        r.stdout
    );
    nothing_left(&img);
}

#[test]
fn dd_image_needs_root() {
    require_root();
    let d = scratch();
    let img = d.path().join("disk.img");
    gpt_image(&img, &[(4, "8300", Content::Empty)]);
    sh(&format!(
        "chmod 755 {} && chmod 644 {}",
        d.path().display(),
        img.display()
    ));
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(testkit::deployer_bin())
        .arg("inspect")
        .arg(&img)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{err}");
    assert!(err.contains("inspecting a dd image needs root"), "{err}");
}

#[test]
fn fat_root_found_with_mtools_like_esxi() {
    require_root();
    let d = scratch();
    let fat = d.path().join("fat.img");
    sh(&format!(
        "truncate -s 16M {f} && mkfs.vfat -n BOOTBANK {f} >/dev/null && mmd -i {f} ::/curtin && echo '#!/bin/sh' > {d}/h && mcopy -i {f} {d}/h ::/curtin/curtin-hooks",
        f = fat.display(),
        d = d.path().display()
    ));
    let img = d.path().join("disk.img");
    gpt_image(
        &img,
        &[(16, "0700", Content::Bytes(std::fs::read(&fat).unwrap()))],
    );
    let r = inspect(&[img.to_str().unwrap()], &[]);
    assert!(
        r.line("partition 1").contains("vfat 'BOOTBANK'"),
        "{}",
        r.stdout
    );
    assert!(
        r.line("root").contains("partition 1 holds /curtin"),
        "{}",
        r.stdout
    );
    let os = r.line("os");
    assert!(
        os.starts_with("warning") && os.contains("FAT filesystem (ESXi?)"),
        "{os}"
    );
    assert!(r.line("root-grow").contains("not vfat"), "{}", r.stdout);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    nothing_left(&img);
}
