//! deployer's `curtin` compat Python package, every function run under python3
//! (`tests/python/test_curtin_compat.py`, `python3 -m unittest`): the package as the binary
//! carries it (unpacked by `deployer::curtin_py::unpack`), a small real root whose stub tools
//! log how they were called, a partitioned loop disk for the block queries, and the deployer
//! binary behind the native steps (builtin curthooks, networking, fstab, initramfs, in-target).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use testkit::{deployer_bin, require_root, sh, LoopDisk, MountGuard};

fn write_exec(path: &Path, text: &str) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
}

fn stub(name: &str) -> String {
    format!("#!/bin/sh\necho \"{name} $*\" >> /var/log/tools.log\n")
}

/// A Debian-like root: busybox, cloud-init that takes network v2, stub tools.
fn root(r: &Path) {
    for d in [
        "bin",
        "etc/cloud/cloud.cfg.d",
        "usr/bin",
        "usr/sbin",
        "var/log",
        "var/lib/dpkg",
        "tmp",
        "dev",
        "proc",
        "sys",
        "run",
        "boot",
    ] {
        fs::create_dir_all(r.join(d)).unwrap();
    }
    fs::copy("/bin/busybox", r.join("bin/busybox")).unwrap();
    for a in [
        "sh", "cat", "echo", "env", "test", "ls", "grep", "mkdir", "touch", "mv", "rm", "true",
    ] {
        std::os::unix::fs::symlink("busybox", r.join(format!("bin/{a}"))).unwrap();
    }
    fs::write(r.join("etc/os-release"), "ID=debian\nVERSION_ID=\"12\"\n").unwrap();
    fs::write(
        r.join("var/lib/dpkg/status"),
        "Package: cloud-init\nStatus: install ok installed\nVersion: 24.1-1\n\n",
    )
    .unwrap();
    write_exec(
        &r.join("usr/bin/cloud-init"),
        "#!/bin/sh\ncase \"$1\" in\nfeatures) echo NETWORK_CONFIG_V1; echo NETWORK_CONFIG_V2;;\n*) echo cloud-init 24.1;;\nesac\n",
    );
    for t in [
        "update-initramfs",
        "update-grub",
        "grub-install",
        "dpkg-reconfigure",
    ] {
        write_exec(&r.join(format!("usr/sbin/{t}")), &stub(t));
    }
    write_exec(
        &r.join("usr/bin/debconf-set-selections"),
        &format!(
            "{}cat > /var/log/debconf.in\n",
            stub("debconf-set-selections")
        ),
    );
    // A dpkg-divert that keeps its diversions in /var/lib/divs.
    write_exec(
        &r.join("usr/bin/dpkg-divert"),
        &format!(
            "{}case \"$1\" in\n--list) cat /var/lib/divs 2>/dev/null;;\n--add) echo \"local diversion of $5 to $4\" >> /var/lib/divs; mv \"$5\" \"$4\";;\n--rename) mv \"$3.curtin-disabled\" \"$3\"; grep -v \"of $3 \" /var/lib/divs > /var/lib/divs.n; mv /var/lib/divs.n /var/lib/divs;;\nesac\n",
            stub("dpkg-divert")
        ),
    );
}

#[test]
fn every_function_under_python3() {
    require_root();
    let dir = tempfile::tempdir_in("/var/tmp").unwrap();
    let target = dir.path().join("target");
    root(&target);
    let state = dir.path().join("state");
    fs::create_dir_all(state.join("scratch")).unwrap();
    fs::write(state.join("fstab"), "LABEL=root / ext4 defaults 0 1\n").unwrap();
    fs::write(
        state.join("network_config"),
        "network:\n  version: 2\n  ethernets:\n    eth0: {dhcp4: true}\n",
    )
    .unwrap();
    fs::write(state.join("network_state"), "").unwrap();
    fs::write(
        state.join("config"),
        r#"{"grub": {"install_devices": null}, "sources": {"00_cmdline": {"type": "tgz", "uri": "http://h/r.tgz"}}}"#,
    )
    .unwrap();

    let disk = LoopDisk::new(32 << 20);
    sh(&format!(
        "sgdisk -o -n1:2048:0 {d} >/dev/null",
        d = disk.dev.display()
    ));
    disk.partx();
    let part = disk.part(1);
    sh(&format!("mkfs.ext4 -q -F {}", part.display()));
    let mnt = dir.path().join("blk");
    fs::create_dir(&mnt).unwrap();
    sh(&format!("mount {} {}", part.display(), mnt.display()));
    let _m = MountGuard(mnt.clone());

    let py = dir.path().join("py");
    deployer::curtin_py::unpack(&py).unwrap();
    let tests = Path::new(env!("CARGO_MANIFEST_DIR")).join("python");
    let out = Command::new("python3")
        .args(["-m", "unittest", "-v", "test_curtin_compat"])
        .current_dir(&tests)
        .env("PYTHONPATH", &py)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("DEPLOYER_CURTIN", deployer_bin())
        .env("TEST_TARGET", &target)
        .env("TEST_STATE", &state)
        .env("TEST_DISK", &disk.dev)
        .env("TEST_PART", &part)
        .env("TEST_MOUNT", &mnt)
        .env_remove("CONFIG")
        .env_remove("TARGET_MOUNT_POINT")
        .env_remove("OUTPUT_FSTAB")
        .env_remove("CURTIN_REPORTSTACK")
        .env("DEPLOYER_CMDLINE_FILE", dir.path().join("none"))
        .output()
        .expect("python3");
    let text = String::from_utf8_lossy(&out.stderr);
    println!("{text}");
    assert!(out.status.success(), "{text}");
    assert!(text.contains("OK"), "{text}");
    // Nothing left mounted inside the root by the in-target runs.
    let mounts = fs::read_to_string("/proc/mounts").unwrap();
    assert!(
        !mounts.contains(&format!("{} ", target.join("proc").display())),
        "{mounts}"
    );
}
