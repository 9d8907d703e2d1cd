//! The three whole deployments of issue 8, from the ephemeral boot to the deployed OS's first
//! boot. They drive `deployer install` as a provisioning system does (config URL on the kernel
//! command line) and need a static deployer (`scripts/build-static`) and minutes of TCG each.
//! All three run in the default test run (`scripts/test` shows their phases and durations;
//! `DEPLOYER_QEMU=0` skips them); one alone: `cargo test -p qemu-tests --test scenarios NAME
//! -- --nocapture`.

/// The storage layers of issue 14 (RAID, LVM, bcache, LUKS, redeploy, LVM dd image): in this
/// binary so that its long run shares the VM lanes with the scenarios above.
#[path = "scenarios/storage.rs"]
mod storage;

use qemu_tests::image::{self, CLOUD_ROOT, HOOKS_DISK, NO_CLOUD_INIT_ROOT};
use qemu_tests::scenario::{check_oauth, ext4_size, partition_extent, stage_events, Deployment};
use qemu_tests::vm::DEFAULT_MAC;
use qemu_tests::{harness_unavailable, skip, Phases};
use std::time::Duration;

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

/// The install stages in curtin's order.
const STAGES: &[&str] = &[
    "early",
    "partitioning",
    "network",
    "extract",
    "curthooks",
    "hook",
    "late",
];

fn gate(test: &str) -> Option<qemu_tests::lane::Lane> {
    if let Some(why) = harness_unavailable() {
        skip(test, &why);
        return None;
    }
    Some(qemu_tests::lane::acquire())
}

/// MAAS's custom-image checks, as its preseed sends them (late_commands 98 and 99).
const MAAS_LATE: &str = r#"late_commands:
  98-validate-custom-image-has-cloud-init: [curtin, in-target, --, bash, -c, 'cloud-init --version || (echo "cloud-init not detected, MAAS will not be able to configure this machine properly" && exit 1)']
  99-validate-custom-image-has-netplan: [curtin, in-target, --, bash, -c, 'netplan info || (echo "netplan not detected, MAAS will not be able to configure this machine properly" && exit 1)']
install:
  log_file: /tmp/install.log
  post_files: [/tmp/install.log]
"#;

/// A successful run's stage events: cmd-install opens first and closes last with SUCCESS, the
/// stages it ran open and close in curtin's order, and nothing failed.
fn assert_success_events(d: &Deployment) {
    let ev = stage_events(&d.events());
    let show = format!("{ev:#?}");
    assert_eq!(
        ev.first().map(|e| (e.0.as_str(), e.1.as_str())),
        Some(("cmd-install", "start")),
        "{show}"
    );
    assert_eq!(
        ev.last()
            .map(|e| (e.0.as_str(), e.1.as_str(), e.2.as_str())),
        Some(("cmd-install", "finish", "SUCCESS")),
        "{show}"
    );
    assert!(!ev.iter().any(|e| e.2 == "FAIL"), "a stage failed: {show}");
    let order: Vec<&str> = ev
        .iter()
        .filter(|e| e.1 == "start")
        .filter_map(|e| e.0.strip_prefix("cmd-install/stage-"))
        .collect();
    let expected: Vec<&str> = STAGES
        .iter()
        .copied()
        .filter(|s| order.contains(s))
        .collect();
    assert_eq!(order, expected, "stages out of curtin's order: {show}");
    for s in ["partitioning", "extract", "curthooks", "late"] {
        let name = format!("cmd-install/stage-{s}");
        assert!(
            ev.iter()
                .any(|e| e.0 == name && e.1 == "finish" && e.2 == "SUCCESS"),
            "no SUCCESS finish for {name}: {show}"
        );
    }
    check_oauth(&d.event_auth_headers()).expect("OAuth on every event");
}

/// A Python 3 hook in the shape of packer-maas's Debian `curtin-hooks`: environment and config
/// through `curtin.util` and `curtin.config`, the whole of `builtin_curthooks`, then `/curtin`
/// removed. It leaves which curtin package it imported in the target.
const DEBIAN_PYTHON_HOOK: &str = r#"#!/usr/bin/env python3
import os
import shutil

import curtin
from curtin.commands.curthooks import builtin_curthooks
from curtin.config import load_command_config
from curtin.util import load_command_environment


def main():
    state = load_command_environment()
    config = load_command_config(None, state)
    target = state['target']
    with open(os.path.join(target, 'root/curtin-hooks.marker'), 'w') as f:
        f.write('python %s\n' % curtin.__file__)
    builtin_curthooks(config, target, state)
    shutil.rmtree(os.path.dirname(__file__))


if __name__ == "__main__":
    main()
"#;

/// Scenario 1 as a MAAS deployment: the ephemeral OS boots with only MAAS's `cloud-config-url=`,
/// the fake MAAS serves the preseed and an installer archive (curtin pack's format, no `curtin`
/// package: deployer's own serves the hook) whose configs are MAAS's fragments in MAAS's order.
#[test]
fn tgz_flat_uefi_static_network() {
    let Some(_g) = gate("tgz_flat_uefi_static_network") else {
        return;
    };
    let mut ph = Phases::new("scenario1-maas-tgz-uefi");
    let (tgz, _) = ph
        .run("image (cached)", || {
            image::tgz_with_hook(&CLOUD_ROOT, "debian-cloud-pyhook-tgz", DEBIAN_PYTHON_HOOK)
        })
        .expect("tgz");
    let disk_size = 4 * GIB;
    let d = Deployment::new("scenario1", &tgz, disk_size, true).expect("deployment");
    // The curthooks rebuild the initramfs, as curtin does. With Debian's MODULES=most that is
    // ~12,700 processes (25 s on the host, 15 min under TCG); the config sets MODULES=dep
    // through write_files, as operators of small images do, which also proves that
    // mkinitramfs finds the root device from inside deployer's in-target chroot.
    // MAAS's flat UEFI layout: a 512 MiB ESP, the root filling the rest (MAAS sends its size
    // in bytes: the disk less the ESP, 1 MiB of alignment in front and the backup GPT behind).
    let root_size = disk_size - 512 * MIB - 2 * MIB;
    let storage = format!(
        r#"storage:
  version: 1
  config:
    - {{id: disk0, type: disk, ptable: gpt, serial: disk0, name: main_disk, grub_device: true, wipe: superblock}}
    - {{id: disk0-part1, type: partition, device: disk0, number: 1, size: 536870912, flag: boot, wipe: superblock}}
    - {{id: disk0-part2, type: partition, device: disk0, number: 2, size: {root_size}, wipe: superblock}}
    - {{id: disk0-part1_format, type: format, volume: disk0-part1, fstype: fat32, label: efi}}
    - {{id: disk0-part2_format, type: format, volume: disk0-part2, fstype: ext4, label: root}}
    - {{id: disk0-part2_mount, type: mount, device: disk0-part2_format, path: /}}
    - {{id: disk0-part1_mount, type: mount, device: disk0-part1_format, path: /boot/efi}}
"#
    );
    let network = format!(
        r#"network_commands: {{builtin: [curtin, net-meta, custom]}}
network:
  version: 1
  config:
    - type: physical
      name: eth0
      mac_address: "{DEFAULT_MAC}"
      subnets:
        - type: static
          address: 10.0.2.50/24
          gateway: 10.0.2.2
          dns_nameservers: [10.0.2.3]
          dns_search: [deployer.test]
"#
    );
    let template = format!(
        "write_files:\n  initramfs_modules:\n    path: /etc/initramfs-tools/conf.d/modules-dep.conf\n    content: \"MODULES=dep\\n\"\n{MAAS_LATE}"
    );
    // MAAS's fragments in get_curtin_yaml_config's order: storage, reporting + install,
    // network, the rendered template; the source is COMMAND's positional argument.
    let configs = [
        storage,
        format!("#cloud-config\n{}", d.reporting_yaml()),
        network,
        template,
    ];
    let names: Vec<String> = (0..configs.len())
        .map(|i| format!("configs/config-{i:03}.cfg"))
        .collect();
    let files: Vec<(&str, &[u8])> = names
        .iter()
        .zip(&configs)
        .map(|(n, c)| (n.as_str(), c.as_bytes()))
        .collect();
    let flags: Vec<String> = names.iter().map(|n| format!("--config={n}")).collect();
    let image_url = d.url("/image");
    let mut command = vec!["curtin", "--install-deps", "install"];
    command.extend(flags.iter().map(String::as_str));
    command.push(&image_url);
    let installer = deployer::maas::installer::pack(&files, &command).expect("installer");
    let run = ph
        .run("deploy (ephemeral OS, MAAS boot, TCG)", || {
            d.deploy_maas(&d.maas_preseed(), &installer, Duration::from_secs(1800))
        })
        .expect("deploy");
    assert_eq!(
        run.result("install-exit").as_deref(),
        Some("0"),
        "deployer install failed; its output:\n{}",
        Deployment::agent_output(&run)
    );
    assert_success_events(&d);
    assert!(d.installer_fetched(), "MAAS's installer was not fetched");
    let agent = run.from_marker("running deployer install", usize::MAX);
    assert!(
        agent.contains("hooks' Python curtin package") && agent.contains("(deployer's own)"),
        "{agent}"
    );
    let boot = ph
        .run("first boot (OVMF, TCG)", || {
            d.first_boot("deployed-tgz", Duration::from_secs(600))
        })
        .expect("first boot");
    let ctx = boot.tail(60);
    // The Python hook ran with deployer's curtin package, unpacked at /curtin where curtin's
    // archive puts its own, and removed the image's /curtin.
    let marker = boot.result("hook-marker").unwrap_or_default();
    assert!(
        marker == "python /curtin/curtin/__init__.py",
        "hook marker {marker:?}: {ctx}"
    );
    assert_eq!(boot.result("curtin-dir").as_deref(), Some(""), "{ctx}");
    assert_eq!(boot.result("done").as_deref(), Some("1"), "{ctx}");
    assert_eq!(
        boot.result("hostname").as_deref(),
        Some("deployed-tgz"),
        "{ctx}"
    );
    assert_eq!(boot.result("firmware").as_deref(), Some("uefi"), "{ctx}");
    assert!(
        boot.result("addresses")
            .unwrap_or_default()
            .contains("eth0 10.0.2.50/24"),
        "{ctx}"
    );
    assert!(
        boot.result("routes")
            .unwrap_or_default()
            .contains("via 10.0.2.2"),
        "{ctx}"
    );
    let netplan = boot.result("netplan").unwrap_or_default();
    assert!(
        netplan.contains("10.0.2.3") && netplan.contains("deployer.test"),
        "DNS not applied: {netplan}"
    );
    let fstab = boot.result("fstab").unwrap_or_default();
    assert!(
        fstab.contains("# / was on /dev/vda2 during curtin installation"),
        "{fstab}"
    );
    assert!(
        fstab.contains("/dev/disk/by-uuid/") && fstab.contains(" / ext4 defaults 0 1"),
        "{fstab}"
    );
    assert!(fstab.contains(" /boot/efi vfat defaults 0 1"), "{fstab}");
    assert_eq!(
        boot.result("root-source").as_deref(),
        Some("/dev/vda2"),
        "{ctx}"
    );
    let root: u64 = boot
        .result("root-size")
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    assert!(
        root > (root_size as f64 * 0.9) as u64,
        "root is {root} bytes of a {root_size}-byte partition"
    );
}

#[test]
fn ddgz_with_curtin_hooks_grows_and_boots() {
    let Some(_g) = gate("ddgz_with_curtin_hooks_grows_and_boots") else {
        return;
    };
    let mut ph = Phases::new("scenario2-ddgz-bios");
    let (ddgz, _) = ph
        .run("image (cached)", || image::ddgz(&HOOKS_DISK))
        .expect("ddgz");
    let disk_size = 5 * GIB;
    let d = Deployment::new("scenario2", &ddgz, disk_size, false).expect("deployment");
    let config = format!(
        "sources:\n  00_image: {{type: dd-gz, uri: \"{}\"}}\n{}{MAAS_LATE}",
        d.url("/image"),
        d.reporting_yaml()
    );
    let run = ph
        .run("deploy (ephemeral OS, TCG)", || {
            d.deploy(&config, Duration::from_secs(900))
        })
        .expect("deploy");
    assert_eq!(
        run.result("install-exit").as_deref(),
        Some("0"),
        "deployer install failed; its output:\n{}",
        Deployment::agent_output(&run)
    );
    assert_success_events(&d);
    // On the host: the GPT is sound, its backup header is in the disk's last sector, and the root
    // partition reaches the end.
    let disk = d.disk.display().to_string();
    let verify = qemu_tests::run("sgdisk", &["-v", &disk]).expect("sgdisk -v");
    assert!(verify.contains("No problems found"), "{verify}");
    let last = qemu_tests::shell(&format!(
        "dd if='{disk}' bs=512 skip=$(( {disk_size} / 512 - 1 )) count=1 status=none | head -c 8"
    ))
    .unwrap();
    assert_eq!(last, "EFI PART", "no backup GPT header in the last sector");
    let (first, last_lba) = partition_extent(&d.disk, 3).expect("partition 3");
    assert!(
        last_lba >= disk_size / 512 - 34 - 2048,
        "root ends at LBA {last_lba}, not near the end"
    );
    // The filesystem grew with it, at deploy time (cloud-init's growpart would also do it at
    // first boot: this is checked before that boot).
    let fs = ext4_size(&d.disk, first * 512).expect("root superblock");
    let part = (last_lba - first + 1) * 512;
    assert!(
        fs + 16 * MIB >= part,
        "root filesystem is {fs} bytes in a {part}-byte partition"
    );
    let boot = ph
        .run("first boot (SeaBIOS, TCG)", || {
            d.first_boot("deployed-dd", Duration::from_secs(600))
        })
        .expect("first boot");
    let ctx = boot.tail(60);
    assert_eq!(boot.result("done").as_deref(), Some("1"), "{ctx}");
    assert_eq!(boot.result("firmware").as_deref(), Some("bios"), "{ctx}");
    assert_eq!(boot.result("hook-marker").as_deref(), Some("ran"), "{ctx}");
    let env = boot.result("hook-env").unwrap_or_default();
    for var in [
        "TARGET_MOUNT_POINT=",
        "CONFIG=",
        "OUTPUT_FSTAB=",
        "OUTPUT_NETWORK_CONFIG=",
        "WORKING_DIR=",
        "CURTIN_REPORTSTACK=",
    ] {
        assert!(env.contains(var), "hook environment lacks {var}: {env}");
    }
    let root: u64 = boot
        .result("root-size")
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    assert!(
        root > 4 * GIB,
        "the root filesystem did not grow: {root} bytes on a {disk_size}-byte disk"
    );
}

#[test]
fn image_without_cloud_init_fails_like_maas() {
    let Some(_g) = gate("image_without_cloud_init_fails_like_maas") else {
        return;
    };
    let mut ph = Phases::new("scenario3-no-cloud-init");
    let (tgz, _) = ph
        .run("image (cached)", || image::tgz(&NO_CLOUD_INIT_ROOT))
        .expect("tgz");
    let d = Deployment::new("scenario3", &tgz, 4 * GIB, true).expect("deployment");
    let config = format!(
        r#"sources:
  00_image: {{type: tgz, uri: "{}"}}
storage:
  version: 1
  config:
    - {{id: disk0, type: disk, ptable: gpt, serial: disk0, grub_device: true, wipe: superblock}}
    - {{id: disk0-part1, type: partition, device: disk0, number: 1, size: 536870912, flag: boot}}
    - {{id: disk0-part2, type: partition, device: disk0, number: 2, size: 3G}}
    - {{id: disk0-part1_format, type: format, volume: disk0-part1, fstype: fat32}}
    - {{id: disk0-part2_format, type: format, volume: disk0-part2, fstype: ext4}}
    - {{id: disk0-part2_mount, type: mount, device: disk0-part2_format, path: /}}
    - {{id: disk0-part1_mount, type: mount, device: disk0-part1_format, path: /boot/efi}}
{}{MAAS_LATE}"#,
        d.url("/image"),
        d.reporting_yaml()
    );
    let run = ph
        .run("deploy (ephemeral OS, TCG)", || {
            d.deploy(&config, Duration::from_secs(900))
        })
        .expect("deploy");
    let code = run.result("install-exit").unwrap_or_default();
    assert!(
        !code.is_empty() && code != "0",
        "install did not fail: {}",
        Deployment::agent_output(&run)
    );
    assert!(
        run.console.contains(
            "cloud-init not detected, MAAS will not be able to configure this machine properly"
        ),
        "MAAS's message is not on the console:\n{}",
        Deployment::agent_output(&run)
    );
    let ev = stage_events(&d.events());
    let show = format!("{ev:#?}");
    assert_eq!(
        ev.last()
            .map(|e| (e.0.as_str(), e.1.as_str(), e.2.as_str())),
        Some(("cmd-install", "finish", "FAIL")),
        "{show}"
    );
    let failed_stage = ev
        .iter()
        .find(|e| e.0.starts_with("cmd-install/stage-") && e.1 == "finish" && e.2 == "FAIL");
    assert!(
        failed_stage.is_some(),
        "no stage finished with FAIL: {show}"
    );
    check_oauth(&d.event_auth_headers()).expect("OAuth on every event");
    let attempt = ph
        .run("boot attempt (OVMF, 90 s)", || {
            d.boot_attempt(Duration::from_secs(90))
        })
        .expect("boot attempt");
    assert!(
        !attempt.console.contains("Linux version") && attempt.results.is_empty(),
        "the failed disk booted something:\n{}",
        attempt.tail(40)
    );
}
