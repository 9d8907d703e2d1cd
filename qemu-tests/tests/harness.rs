//! The harness's own pieces, each proved by a real run: the test images (built once, then
//! cached), the ephemeral OS booting to its marker and reaching the host's server, and a dd
//! image written on the host booting under OVMF to the end of cloud-init. They run in the
//! default test run (root, the tools of scripts/setup); `DEPLOYER_QEMU=0` skips them.

use qemu_tests::image::{self, CLOUD_ROOT, HOOKS_DISK, NO_CLOUD_INIT_ROOT};
use qemu_tests::scenario::{ext4_size, partition_extent};
use qemu_tests::vm::{Boot, Firmware, Vm};
use qemu_tests::{cache, ephemeral, guest_url, harness_unavailable, seed, skip, Phases};
use std::sync::Mutex;
use std::time::Duration;

/// One heavy thing at a time: the machine has 2 cores shared with other work.
static SERIAL: Mutex<()> = Mutex::new(());

const GIB: u64 = 1 << 30;

fn gate(test: &str) -> Option<std::sync::MutexGuard<'static, ()>> {
    if let Some(why) = harness_unavailable() {
        skip(test, &why);
        return None;
    }
    Some(SERIAL.lock().unwrap_or_else(|e| e.into_inner()))
}

fn tar_list(path: &std::path::Path) -> String {
    qemu_tests::shell(&format!("tar -tzf '{}'", path.display())).expect("list tarball")
}

#[test]
fn images_build_once_and_are_cached() {
    let Some(_g) = gate("images_build_once_and_are_cached") else {
        return;
    };
    let mut ph = Phases::new("images");
    let (tgz, _) = ph
        .run("cloud root tgz", || image::tgz(&CLOUD_ROOT))
        .expect("cloud tgz");
    let (ddgz, _) = ph
        .run("cloud ddgz with hooks", || image::ddgz(&HOOKS_DISK))
        .expect("ddgz");
    let (bad, _) = ph
        .run("no-cloud-init tgz", || image::tgz(&NO_CLOUD_INIT_ROOT))
        .expect("no-cloud-init tgz");
    // A second request is a cache hit: same paths, nothing rebuilt.
    let (again, outcome) = ph
        .run("cache hit", || image::tgz(&CLOUD_ROOT))
        .expect("tgz again");
    assert_eq!(outcome, cache::Outcome::Hit);
    assert_eq!(again, tgz);
    assert!(
        tgz.starts_with(cache::root()),
        "{} is outside the cache",
        tgz.display()
    );

    let list = tar_list(&tgz);
    for want in [
        "./usr/bin/cloud-init",
        "./usr/sbin/netplan",
        "./usr/lib/grub/x86_64-efi/",
        "./usr/lib/grub/i386-pc/",
    ] {
        assert!(
            list.lines().any(|l| l.starts_with(want)),
            "{want} missing from {}",
            tgz.display()
        );
    }
    assert!(
        list.lines().any(|l| l.starts_with("./boot/vmlinuz-")),
        "no kernel in the cloud root"
    );
    assert!(
        list.lines().any(|l| l.starts_with("./boot/initrd.img-")),
        "no initramfs in the cloud root"
    );
    let list = tar_list(&bad);
    assert!(list
        .lines()
        .any(|l| l == "./usr/bin/" || l.starts_with("./usr/bin/")));
    assert!(
        !list
            .lines()
            .any(|l| l.contains("cloud-init") || l.contains("/etc/cloud/")),
        "no-cloud-init root has cloud-init"
    );

    // The dd image: a GPT with BIOS boot, ESP and root (the primary table is in its first MiB;
    // unpacking all of it costs tens of seconds, which the boot test below spends anyway).
    let dir = tempfile::tempdir_in(testkit::loopdev::scratch_root()).unwrap();
    let raw = dir.path().join("head.raw");
    ph.run("read the ddgz's table", || {
        qemu_tests::shell(&format!(
            "dd if=<(gzip -dc '{}') of='{}' bs=1M count=1 iflag=fullblock status=none; truncate -s {} '{}'",
            ddgz.display(),
            raw.display(),
            HOOKS_DISK.size,
            raw.display()
        ))
    })
    .expect("read the table");
    let table = qemu_tests::run("sgdisk", &["-p", &raw.display().to_string()]).unwrap();
    for (n, code) in [(1, "EF02"), (2, "EF00"), (3, "8300")] {
        assert!(
            table
                .lines()
                .any(|l| l.split_whitespace().next() == Some(&n.to_string()) && l.contains(code)),
            "partition {n} ({code}) missing:\n{table}"
        );
    }
}

#[test]
fn ephemeral_os_boots_to_its_marker_and_reaches_the_server() {
    let Some(_g) = gate("ephemeral_os_boots_to_its_marker_and_reaches_the_server") else {
        return;
    };
    let mut ph = Phases::new("ephemeral");
    let (kernel, _) = ph
        .run("kernel (apt-get download, cached)", ephemeral::kernel)
        .expect("kernel");
    let dir = tempfile::tempdir_in(testkit::loopdev::scratch_root()).unwrap();
    let bin = ephemeral::deployer_binary();
    eprintln!("ephemeral deployer: {}", bin.display());
    let initrd = ph
        .run("initramfs", || {
            ephemeral::initramfs(&kernel, &bin, dir.path())
        })
        .expect("initramfs");
    let srv = testkit::Server::start();
    srv.serve_bytes("/probe.txt", b"hello-from-the-host".to_vec());
    let blank = dir.path().join("blank.raw");
    std::fs::File::create(&blank)
        .unwrap()
        .set_len(4 * GIB)
        .unwrap();
    let mut vm = Vm::new(
        "ephemeral",
        Boot::Kernel {
            kernel: kernel.vmlinuz(),
            initrd,
            append: format!(
                "console=ttyS0 panic=-1 quiet deployer.probe={}",
                guest_url(&srv, "/probe.txt")
            ),
        },
        // OVMF, as the UEFI scenarios boot it: the agent's efibootmgr needs efivars.
        Firmware::Uefi {
            vars: dir.path().join("OVMF_VARS.fd"),
        },
        dir.path(),
    );
    vm.disks.push(blank);
    vm.timeout = Duration::from_secs(180);
    let out = ph
        .run("boot to poweroff (TCG)", || vm.run())
        .expect("ephemeral boot");
    let ctx = out.tail(30);
    assert_eq!(
        out.result("marker").as_deref(),
        Some("ephemeral-ok"),
        "{ctx}"
    );
    assert!(
        out.result("version")
            .unwrap_or_default()
            .starts_with("deployer "),
        "{ctx}"
    );
    assert!(
        out.result("curtin")
            .unwrap_or_default()
            .starts_with("curtin "),
        "{ctx}"
    );
    assert_eq!(
        out.result("fetched").as_deref(),
        Some("hello-from-the-host"),
        "{ctx}"
    );
    assert_eq!(out.result("dhcp").as_deref(), Some("10.0.2.15/24"), "{ctx}");
    assert_eq!(out.result("disks").as_deref(), Some("vda"), "{ctx}");
    // The host tools a real ephemeral OS has run here too (their libraries came along).
    assert!(
        out.result("mkfs")
            .unwrap_or_default()
            .starts_with("mke2fs "),
        "{ctx}"
    );
    assert!(
        out.result("sgdisk")
            .unwrap_or_default()
            .starts_with("GPT fdisk"),
        "{ctx}"
    );
    assert!(
        srv.requests().iter().any(|r| r.path == "/probe.txt"),
        "server saw no request"
    );
}

#[test]
#[ignore = "5 min of TCG that scenarios 1 (a UEFI boot) and 2 (this ddgz, deployed and booted) cover: DEPLOYER_QEMU=1 scripts/test"]
fn dd_image_written_on_the_host_boots_to_cloud_init_under_uefi() {
    let Some(_g) = gate("dd_image_written_on_the_host_boots_to_cloud_init_under_uefi") else {
        return;
    };
    let mut ph = Phases::new("ddgz-uefi-boot");
    let (ddgz, _) = ph
        .run("ddgz (cached)", || image::ddgz(&HOOKS_DISK))
        .expect("ddgz");
    let dir = tempfile::tempdir_in(testkit::loopdev::scratch_root()).unwrap();
    let raw = dir.path().join("disk.raw");
    ph.run("zcat | dd onto a 3 GiB disk", || {
        image::unpack_ddgz(&ddgz, &raw, 3 * GIB)
    })
    .expect("unpack");
    // dd alone leaves the table and the filesystem at the image's size (what the agent must grow;
    // also proves the host-side readers the scenarios use).
    let (first, last) = partition_extent(&raw, 3).expect("partition 3");
    assert_eq!(
        last,
        HOOKS_DISK.size / 512 - 34,
        "partition 3 of the image ends where GPT allows"
    );
    let fs = ext4_size(&raw, first * 512).expect("superblock");
    assert_eq!(
        fs,
        (last - first + 1) * 512 / 4096 * 4096,
        "ext4 fills its partition"
    );
    let seed = seed::nocloud(dir.path(), "ddgz-host").expect("seed");
    let vars = dir.path().join("OVMF_VARS.fd");
    let mut vm = Vm::new("ddgz-uefi", Boot::Disk, Firmware::Uefi { vars }, dir.path());
    vm.disks = vec![raw, seed];
    vm.timeout = Duration::from_secs(420);
    let out = ph
        .run("first boot to cloud-init's end (TCG, OVMF)", || vm.run())
        .expect("boot");
    let ctx = out.tail(40);
    assert_eq!(out.result("done").as_deref(), Some("1"), "{ctx}");
    assert_eq!(
        out.result("hostname").as_deref(),
        Some("ddgz-host"),
        "{ctx}"
    );
    assert_eq!(out.result("firmware").as_deref(), Some("uefi"), "{ctx}");
    assert_eq!(
        out.result("root-source").as_deref(),
        Some("/dev/vda3"),
        "{ctx}"
    );
    assert!(
        out.console.contains("finished at"),
        "cloud-init did not finish:\n{ctx}"
    );
}
