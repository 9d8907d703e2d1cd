//! The one busy check (issue 16, item 6): a disk image file that backs a loop device whose
//! partition is mounted is refused by `write-image` and by `install --target FILE` before a
//! byte is written, whatever name the file is given (matched by inode), and the mounted
//! filesystem stays intact (`e2fsck -n` clean).

use std::path::Path;
use std::process::{Command, Output};

use testkit::fixtures::build_disk;
use testkit::{require_root, sh, LoopDisk, MountGuard};

const MIB: u64 = 1 << 20;

fn deployer(args: &[&str], dir: &Path) -> Output {
    let cmdline = dir.join("cmdline");
    std::fs::write(&cmdline, "").unwrap();
    testkit::deployer()
        .args(args)
        .env_remove("CONFIG")
        .env_remove("CURTIN_REPORTSTACK")
        .env("DEPLOYER_CMDLINE_FILE", &cmdline)
        .output()
        .expect("run deployer")
}

fn refused(o: &Output, what: &str, needle: &str) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(
        o.status.code(),
        Some(5),
        "{what}: exit code; stderr:\n{err}"
    );
    assert!(
        err.contains(needle),
        "{what}: expected {needle:?} in:\n{err}"
    );
}

fn sha(p: &Path) -> String {
    sh(&format!("sha256sum < {}", p.display()))
}

#[test]
fn a_file_backing_a_mounted_loop_partition_is_refused_by_inode() {
    require_root();
    let work = tempfile::tempdir_in(testkit::loopdev::scratch_root()).unwrap();
    build_disk(work.path(), "image.img", 24, "ext4");
    let image = work.path().join("image.img");

    // The file under test backs a loop device with an ext4 partition, mounted, with data.
    let d = LoopDisk::new(64 * MIB);
    sh(&format!(
        "sgdisk -o -n1:2048:0 {} >/dev/null",
        d.dev.display()
    ));
    d.partx();
    // No lazy init: nothing but deployer could write to the file while the test watches it.
    sh(&format!(
        "mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 {}",
        d.part(1).display()
    ));
    let mnt = tempfile::tempdir().unwrap();
    sh(&format!(
        "mount {} {}",
        d.part(1).display(),
        mnt.path().display()
    ));
    let guard = MountGuard(mnt.path().to_path_buf());
    std::fs::write(mnt.path().join("keep"), b"precious").unwrap();
    sh("sync");
    let before = sha(&d.file);
    let len = std::fs::metadata(&d.file).unwrap().len();
    let loopname = d.dev.file_name().unwrap().to_str().unwrap().to_string();
    let needle = format!(
        "it backs {}, and /dev/{loopname}p1 is mounted at {}",
        d.dev.display(),
        mnt.path().display()
    );

    // write-image onto the file, and onto a hard link to it (another name, the same inode).
    let o = deployer(
        &[
            "write-image",
            image.to_str().unwrap(),
            d.file.to_str().unwrap(),
        ],
        work.path(),
    );
    refused(&o, "write-image FILE", &needle);
    let link = work.path().join("another-name.img");
    std::fs::hard_link(&d.file, &link).unwrap();
    let o = deployer(
        &[
            "write-image",
            image.to_str().unwrap(),
            link.to_str().unwrap(),
        ],
        work.path(),
    );
    refused(&o, "write-image LINK", "and /dev/");

    // install --target FILE (with a --size that would grow it): refused before the stages.
    let cfg = work.path().join("c.yaml");
    std::fs::write(
        &cfg,
        format!(
            "install: {{log_file: {}/install.log, error_tarfile: ''}}\nstages: [early]\nearly_commands: {{a: 'touch {}/ran'}}\n",
            work.path().display(),
            work.path().display()
        ),
    )
    .unwrap();
    let o = deployer(
        &[
            "install",
            "-c",
            cfg.to_str().unwrap(),
            "--target",
            d.file.to_str().unwrap(),
            "--size",
            "128M",
            &format!("dd-raw:{}", image.display()),
        ],
        work.path(),
    );
    refused(&o, "install --target FILE", &needle);
    assert!(!work.path().join("ran").exists(), "a stage ran");
    let attached = sh(&format!("losetup -j {}", d.file.display()));
    assert_eq!(
        attached.lines().count(),
        1,
        "another loop device was left: {attached}"
    );

    // Nothing was written: same bytes, same size, and the filesystem is clean.
    assert_eq!(
        std::fs::metadata(&d.file).unwrap().len(),
        len,
        "the file was grown"
    );
    sh("sync");
    assert_eq!(sha(&d.file), before, "the backing file changed");
    assert_eq!(std::fs::read(mnt.path().join("keep")).unwrap(), b"precious");
    drop(guard);
    sh(&format!("e2fsck -fn {} >/dev/null", d.part(1).display()));
}

#[test]
fn a_loop_device_whose_sibling_over_the_same_file_is_mounted_is_refused() {
    require_root();
    let work = tempfile::tempdir_in(testkit::loopdev::scratch_root()).unwrap();
    build_disk(work.path(), "image.img", 24, "ext4");
    let image = work.path().join("image.img");
    // A filesystem on the whole loop device (no partition table), mounted.
    let d = LoopDisk::new(32 * MIB);
    sh(&format!("mkfs.ext4 -q -F {}", d.dev.display()));
    let mnt = tempfile::tempdir().unwrap();
    sh(&format!(
        "mount {} {}",
        d.dev.display(),
        mnt.path().display()
    ));
    let guard = MountGuard(mnt.path().to_path_buf());
    // A second loop device over the same file, free itself.
    let second = sh(&format!("losetup --find --show {}", d.file.display()));
    let second = second.trim().to_string();
    struct Detach(String);
    impl Drop for Detach {
        fn drop(&mut self) {
            let _ = Command::new("losetup").arg("-d").arg(&self.0).status();
        }
    }
    let _second = Detach(second.clone());
    let o = deployer(
        &["write-image", image.to_str().unwrap(), &second],
        work.path(),
    );
    refused(
        &o,
        "write-image on the sibling",
        &format!(
            "its backing file also backs {}, and /dev/{} is mounted at {}",
            d.dev.display(),
            d.dev.file_name().unwrap().to_str().unwrap(),
            mnt.path().display()
        ),
    );
    drop(guard);
    sh(&format!("e2fsck -fn {} >/dev/null", d.dev.display()));
}

#[test]
fn an_active_swap_area_is_refused() {
    require_root();
    let work = tempfile::tempdir_in(testkit::loopdev::scratch_root()).unwrap();
    build_disk(work.path(), "image.img", 24, "ext4");
    let image = work.path().join("image.img");
    let d = LoopDisk::new(32 * MIB);
    sh(&format!("mkswap {} >/dev/null", d.dev.display()));
    sh(&format!("swapon {}", d.dev.display()));
    // Swapped off before the loop device is detached, also when an assertion fails.
    struct SwapOff(std::path::PathBuf);
    impl Drop for SwapOff {
        fn drop(&mut self) {
            let _ = Command::new("swapoff").arg(&self.0).status();
        }
    }
    let _off = SwapOff(d.dev.clone());
    let before = d.read_at(0, 64 << 10);
    for target in [d.dev.to_str().unwrap(), d.file.to_str().unwrap()] {
        let o = deployer(
            &["write-image", image.to_str().unwrap(), target],
            work.path(),
        );
        refused(
            &o,
            target,
            &format!(
                "/dev/{} is in use as swap",
                d.dev.file_name().unwrap().to_str().unwrap()
            ),
        );
    }
    assert_eq!(d.read_at(0, 64 << 10), before, "the swap area was written");
}
