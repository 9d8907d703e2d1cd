//! The command line as a user runs it: `deployer validate`, `deployer plan`, and the binary
//! answering as `curtin`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

fn ex(name: &str) -> String {
    examples().join(name).to_string_lossy().into_owned()
}

fn deployer(args: &[&str]) -> Output {
    testkit::deployer()
        .args(args)
        .env_remove("CONFIG")
        // Hermetic: no config from the host's kernel command line, short fetch retries.
        .env("DEPLOYER_CMDLINE_FILE", "/dev/null")
        .env("DEPLOYER_FETCH_BACKOFF_MS", "1")
        .output()
        .expect("run deployer")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn code(o: &Output) -> i32 {
    o.status.code().expect("exit code")
}

fn write(dir: &Path, name: &str, body: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, body).unwrap();
    p.to_string_lossy().into_owned()
}

#[test]
fn validate_accepts_every_example() {
    let mut n = 0;
    for e in std::fs::read_dir(examples()).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "yaml") {
            let o = deployer(&["validate", "-c", p.to_str().unwrap()]);
            assert_eq!(code(&o), 0, "{}: {}", p.display(), text(&o.stderr));
            assert!(
                text(&o.stdout).starts_with("config is valid"),
                "{}",
                text(&o.stdout)
            );
            assert_eq!(text(&o.stderr), "", "no warnings for {}", p.display());
            n += 1;
        }
    }
    assert!(n >= 6);
    // MAAS's numbered parts, passed in order
    let parts = examples().join("maas-parts");
    let mut args = vec!["validate".to_string()];
    for i in 0..5 {
        args.push("-c".into());
        args.push(
            parts
                .join(format!("config-00{i}.cfg"))
                .to_string_lossy()
                .into_owned(),
        );
    }
    let o = deployer(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    assert!(
        text(&o.stdout).contains("storage v1 with 7 items, network v2"),
        "{}",
        text(&o.stdout)
    );
}

#[test]
fn validate_print_dumps_the_merged_config() {
    let dir = tempfile::tempdir().unwrap();
    let over = write(
        dir.path(),
        "over.yaml",
        "install: {log_file: /tmp/x.log}\nstages: [early, late]\n",
    );
    let o = deployer(&["validate", "--print", "-c", &ex("demo.yaml"), "-c", &over]);
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    let v: yaml_serde::Value = yaml_serde::from_slice(&o.stdout).unwrap();
    assert_eq!(v["install"]["log_file"], "/tmp/x.log");
    assert_eq!(
        v["install"]["error_tarfile"],
        "/var/log/curtin/curtin-error-logs.tar"
    );
    assert_eq!(
        v["stages"],
        yaml_serde::from_str::<yaml_serde::Value>("[early, late]").unwrap()
    );
    assert_eq!(v["storage"]["config"][1]["id"], "esp");
}

#[test]
fn invalid_config_exits_2_naming_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let body = std::fs::read_to_string(ex("demo.yaml"))
        .unwrap()
        .replace("size: 64M", "size: 64MiB");
    let f = write(dir.path(), "bad.yaml", &body);
    let o = deployer(&["validate", "-c", &f]);
    assert_eq!(code(&o), 2);
    let err = text(&o.stderr);
    let line = body.lines().position(|l| l.contains("64MiB")).unwrap() + 1;
    assert!(
        err.contains(&format!("{f}:{line}:"))
            && err.contains("storage.config[1].size: '64MiB' is not valid input."),
        "{err}"
    );
    // plan refuses the same config the same way, before looking at any disk
    let o = deployer(&["plan", "-c", &f, "--target", "/nonexistent/disk.img"]);
    assert_eq!(code(&o), 2, "{}", text(&o.stderr));

    let o = deployer(&["validate", "-c", "/nonexistent/c.yaml"]);
    assert_eq!(code(&o), 2);
    assert!(
        text(&o.stderr).contains("reading config /nonexistent/c.yaml"),
        "{}",
        text(&o.stderr)
    );

    let o = deployer(&["validate"]);
    assert_eq!(code(&o), 2);
    assert!(
        text(&o.stderr).contains("no config: pass -c FILE_OR_URL"),
        "{}",
        text(&o.stderr)
    );

    let o = deployer(&["validate", "-c", "http://127.0.0.1:9/config.yaml"]);
    assert_eq!(code(&o), 2);
    assert!(
        text(&o.stderr).contains("fetching config http://127.0.0.1:9/config.yaml"),
        "{}",
        text(&o.stderr)
    );

    let o = deployer(&[
        "validate",
        "-c",
        &ex("demo.yaml"),
        "--set",
        "json:storage={\"version\": 9}",
    ]);
    assert_eq!(code(&o), 2);
    assert!(
        text(&o.stderr).contains("--set json:storage={\"version\": 9}: storage.version: storage version 9 is not supported"),
        "{}",
        text(&o.stderr)
    );
}

#[test]
fn warnings_go_to_stderr_and_do_not_fail() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "w.yaml",
        "sources: {a: 'tgz:http://h/a.tgz'}\nfrobnicate: 1\n",
    );
    let o = deployer(&["validate", "-c", &f]);
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    assert_eq!(
        text(&o.stderr),
        format!("warning: {f}:2:13: frobnicate: unknown key, ignored (curtin ignores it too)\n")
    );
}

#[test]
fn config_from_env_when_no_c() {
    let o = testkit::deployer()
        .args(["validate"])
        .env("CONFIG", ex("tgz-uefi.yaml"))
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
}

#[test]
fn plan_demo_against_a_missing_file_touches_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("disk.img");
    let o = deployer(&[
        "plan",
        "-c",
        &ex("demo.yaml"),
        "--target",
        img.to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    let out = text(&o.stdout);
    let order: Vec<usize> = [
        "early",
        "partitioning",
        "network",
        "extract",
        "curthooks",
        "hook",
        "late",
    ]
    .iter()
    .map(|s| {
        out.find(&format!("stage {s}:"))
            .unwrap_or_else(|| panic!("no stage {s}: {out}"))
    })
    .collect();
    assert!(
        order.windows(2).all(|w| w[0] < w[1]),
        "stages out of order: {out}"
    );
    for want in [
        "does not exist yet: would be created",
        "disk disk0: --target",
        "partition 1 esp: start 1048576 (sector 2048), size 64 MiB (67108864 bytes), type ef00 (flag boot)",
        "partition 2 rootpart: start 68157440 (sector 133120), size 900 MiB (943718400 bytes), type 8300",
        "format root-fs: ext4 on rootpart, label root",
        "mount esp-mnt: esp-fs (vfat) at /boot/efi",
        "source 00_root: tgz file:///var/tmp/deployer-demo-root.tgz",
        "run 10-done (exec): sh -c echo demo deployment finished",
    ] {
        assert!(out.contains(want), "missing {want:?} in:\n{out}");
    }
    assert!(!img.exists(), "plan created the target");
}

#[test]
fn plan_checks_the_layout_fits_a_file_target_and_leaves_it_alone() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("small.img");
    std::fs::write(&img, vec![0xabu8; 1 << 20]).unwrap();
    let o = deployer(&[
        "plan",
        "-c",
        &ex("demo.yaml"),
        "--target",
        img.to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    assert!(
        text(&o.stdout).contains("DOES NOT FIT"),
        "{}",
        text(&o.stdout)
    );
    assert_eq!(std::fs::read(&img).unwrap(), vec![0xabu8; 1 << 20]);

    // Room for the ESP, not for the root: the plan shows where the room went.
    let mid = dir.path().join("mid.img");
    std::fs::File::create(&mid)
        .unwrap()
        .set_len(512 << 20)
        .unwrap();
    let o = deployer(&[
        "plan",
        "-c",
        &ex("demo.yaml"),
        "--target",
        mid.to_str().unwrap(),
    ]);
    let out = text(&o.stdout);
    let esp = out
        .find("partition 1 esp: start 1048576")
        .unwrap_or_else(|| panic!("{out}"));
    let dnf = out
        .find("DOES NOT FIT: partition 'rootpart' does not fit")
        .unwrap_or_else(|| panic!("{out}"));
    assert!(esp < dnf, "{out}");

    let f = std::fs::File::create(dir.path().join("big.img")).unwrap();
    f.set_len(2 << 30).unwrap();
    let o = deployer(&[
        "plan",
        "-c",
        &ex("demo.yaml"),
        "--target",
        dir.path().join("big.img").to_str().unwrap(),
    ]);
    assert!(
        text(&o.stdout).contains("fits: the layout uses"),
        "{}",
        text(&o.stdout)
    );
}

#[test]
fn plan_dd_image_and_network() {
    let o = deployer(&[
        "plan",
        "-c",
        &ex("maas-ddgz.yaml"),
        "--target",
        "/nonexistent/x.img",
    ]);
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    let out = text(&o.stdout);
    assert!(
        out.contains("simple mode (dd image): stream dd-gz http://10.0.0.2:5248/"),
        "{out}"
    );
    assert!(
        out.contains("network config version 1 from the config: physical ens3"),
        "{out}"
    );
    assert!(out.contains("report events to maas: Webhook"), "{out}");
    let o = deployer(&[
        "plan",
        "-c",
        &ex("tgz-uefi.yaml"),
        "-c",
        &ex("network-v2.yaml"),
    ]);
    assert!(
        text(&o.stdout)
            .contains("network config version 2 from the config, passed through: ethernets: eth0"),
        "{}",
        text(&o.stdout)
    );
}

#[test]
fn plan_says_what_is_not_supported_yet() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "lvm.yaml",
        "sources: {a: 'tgz:http://h/a.tgz'}\nstorage:\n  version: 1\n  config:\n    - {id: d, type: disk, path: /dev/no-such-disk-for-plan, ptable: gpt}\n    - {id: p, type: partition, device: d, size: 10G}\n    - {id: q, type: partition, device: d, size: 10G}\n    - {id: md0, type: raid, name: md0, raidlevel: 1, devices: [p, q], ptable: gpt}\n    - {id: mdp, type: partition, device: md0, size: 5G, flag: lvm}\n    - {id: vg, type: lvm_volgroup, name: vg0, devices: [mdp]}\n    - {id: lv, type: lvm_partition, volgroup: vg, name: root}\n    - {id: z, type: zpool, pool: rpool, vdevs: [lv]}\n",
    );
    let o = deployer(&["plan", "-c", &f]);
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    let out = text(&o.stdout);
    assert!(
        out.contains("an install would stop here: not supported yet: zpool id=z"),
        "{out}"
    );
    assert!(text(&o.stderr)
        .contains("warning: storage: an install would stop here: not supported yet: zpool id=z"));
    // The layers are planned, each saying what will be done to it.
    for want in [
        "raid md0: raid1 /dev/md0 of p, q; mdadm --create --metadata=default",
        "partition  mdp: 5368709120 bytes (flag lvm), placed when md0 exists",
        "lvm_volgroup vg: volume group vg0 on mdp; vgcreate",
        "lvm_partition lv: /dev/vg0/root, the rest of the group; lvcreate",
        "clear-holders: disk d is not on this machine",
    ] {
        assert!(out.contains(want), "{want:?} not in:\n{out}");
    }
}

#[test]
fn curtin_multi_call_dispatch() {
    let dir = testkit::curtin_dir();
    let curtin = dir.join("curtin");
    let run = |args: &[&str]| {
        Command::new(&curtin)
            .args(args)
            .env_remove("CONFIG")
            .output()
            .unwrap()
    };
    // curtin's global -c before the subcommand reaches it
    let o = run(&["-c", &ex("demo.yaml"), "validate"]);
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    let o = run(&[
        "--showtrace",
        "-v",
        "-c",
        &ex("demo.yaml"),
        "block-meta",
        "custom",
    ]);
    assert_ne!(code(&o), 0);
    assert!(
        text(&o.stderr).contains("curtin: error: no target: pass --target-mount DIR"),
        "{}",
        text(&o.stderr)
    );
    let o = run(&["in-target", "-t", "/nonexistent", "--", "true"]);
    assert!(
        text(&o.stderr).contains("target /nonexistent does not exist"),
        "{}",
        text(&o.stderr)
    );
    // and through PATH, as hooks call it
    let o = Command::new("sh")
        .args(["-c", "curtin --help"])
        .env("PATH", format!("{}:/usr/bin:/bin", dir.display()))
        .output()
        .unwrap();
    assert_eq!(code(&o), 0);
    assert!(
        text(&o.stdout).contains("Usage: curtin"),
        "{}",
        text(&o.stdout)
    );
    // unknown subcommands are usage errors
    let o = run(&["frobnicate"]);
    assert_eq!(code(&o), 2);
}
