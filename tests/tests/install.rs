//! `deployer install`: curtin's stage order, Stage.run semantics and environment, config
//! errors and exit codes, `--target FILE` on a loop device, and (once the stages are merged)
//! whole tgz and ddgz deployments onto loop devices from a real HTTP server.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;
use testkit::{deployer_bin, require_root, Server};

const NO_BUILTINS: &str = "
partitioning_commands: {builtin: null}
network_commands: {builtin: null}
extract_commands: {builtin: null}
curthooks_commands: {builtin: null}
hook_commands: {builtin: null}
";

fn install(dir: &Path, args: &[&str]) -> Output {
    let cmdline = dir.join("cmdline");
    std::fs::write(&cmdline, "").unwrap();
    testkit::deployer()
        .arg("install")
        .args(args)
        .env_remove("CONFIG")
        .env_remove("CURTIN_REPORTSTACK")
        .env("DEPLOYER_CMDLINE_FILE", &cmdline)
        .env("DEPLOYER_OAUTH_SKEW_FILE", dir.join("oauth_skew.json"))
        // Tests run installs side by side: each its own lock (one install at a time).
        .env("DEPLOYER_LOCK_FILE", dir.join("install.lock"))
        .output()
        .expect("run deployer")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn write_cfg(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

#[test]
fn stage_commands_run_in_curtins_order_with_curtins_environment() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    let cfg = write_cfg(
        dir.path(),
        "c.yaml",
        &format!(
            "stages: [early, mystage, late]
install: {{log_file: {d}/install.log}}
early_commands: {{z: 'echo early >> {d}/order'}}
mystage_commands:
  maas: 'echo maas >> {d}/order'
  builtin: 'echo builtin >> {d}/order'
  99-y: ['sh', '-c', 'echo 99-y >> {d}/order; env > {d}/env; readlink -f \"$(command -v curtin)\" > {d}/curtin']
  10-off: null
  11-off: ''
late_commands: {{a: 'echo late >> {d}/order'}}
"
        ),
    );
    let o = install(dir.path(), &["-c", &cfg, "http://127.0.0.1:9/root.tgz"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let order = std::fs::read_to_string(dir.path().join("order")).unwrap();
    // Python's sorted(): "99-y" < "builtin" < "maas"; falsy entries skipped.
    assert_eq!(order, "early\n99-y\nbuiltin\nmaas\nlate\n");

    let env: std::collections::HashMap<String, String> =
        std::fs::read_to_string(dir.path().join("env"))
            .unwrap()
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
    assert_eq!(env["CURTIN_REPORTSTACK"], "cmd-install/stage-mystage/99-y");
    for k in [
        "TARGET_MOUNT_POINT",
        "CONFIG",
        "WORKING_DIR",
        "OUTPUT_FSTAB",
        "OUTPUT_NETWORK_CONFIG",
        "OUTPUT_NETWORK_STATE",
        "OUTPUT_INTERFACES",
        "CURTIN_VERBOSITY",
    ] {
        assert!(
            env.contains_key(k),
            "{k} missing from the stage environment"
        );
    }
    assert!(env["OUTPUT_FSTAB"].ends_with("/state/fstab"));
    assert!(env["CONFIG"].ends_with("/state/config"));
    // `curtin` on PATH is this binary (multi-call).
    let curtin = std::fs::read_to_string(dir.path().join("curtin")).unwrap();
    assert_eq!(
        Path::new(curtin.trim()),
        std::fs::canonicalize(deployer_bin()).unwrap()
    );
    // The working dir is removed at the end.
    let top = Path::new(&env["OUTPUT_FSTAB"])
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    assert!(!top.exists(), "{} left behind", top.display());
    // The log has every command's output, between curtin's start and finish lines.
    let log = std::fs::read_to_string(dir.path().join("install.log")).unwrap();
    assert!(log.starts_with("curtin: Installation started."), "{log}");
    assert!(
        log.trim_end().ends_with("curtin: Installation finished."),
        "{log}"
    );
}

#[test]
fn state_config_is_the_merged_json_with_cmdline_sources() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    let cfg = write_cfg(
        dir.path(),
        "c.yaml",
        &format!("{NO_BUILTINS}stages: [early]\ninstall: {{log_file: ''}}\nearly_commands: {{a: 'cp $CONFIG {d}/config.json'}}\n"),
    );
    let o = install(dir.path(), &["-c", &cfg, "dd-gz:http://127.0.0.1:9/img.gz"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let c: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("config.json")).unwrap()).unwrap();
    // As curtin's sanitize_source stores it (hooks' get_dd_images sees it).
    assert_eq!(
        c["sources"]["00_cmdline"],
        serde_json::json!({"type": "dd-gz", "uri": "http://127.0.0.1:9/img.gz"})
    );
    // curtin's builtin is under the user's config.
    assert_eq!(c["late_commands"]["builtin"], serde_json::json!([]));
    assert_eq!(c["partitioning_commands"]["builtin"], Value::Null);
    assert_eq!(
        c["write_files"]["curtin_install_cfg"]["path"],
        "/root/curtin-install-cfg.yaml"
    );
}

#[test]
fn config_errors_exit_2_and_name_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("late_commands: [echo, hi]\n", "late_commands"),
        (
            "sources: {a: 'dd-gz:http://h/a.gz', b: 'dd-xz:http://h/b.xz'}\n",
            "more than one disk image",
        ),
        ("reporting: {x: {type: pigeon}}\n", "pigeon"),
    ];
    for (text, needle) in cases {
        let cfg = write_cfg(dir.path(), "bad.yaml", text);
        let o = install(dir.path(), &["-c", &cfg]);
        assert_eq!(o.status.code(), Some(2), "{text}: {}", stderr(&o));
        assert!(stderr(&o).contains(needle), "{text}: {}", stderr(&o));
    }
    let o = install(dir.path(), &["-c", "/nonexistent/config.yaml"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("/nonexistent/config.yaml"));
}

#[test]
fn a_missing_target_file_needs_a_size() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_cfg(
        dir.path(),
        "c.yaml",
        &format!("{NO_BUILTINS}install: {{log_file: ''}}\n"),
    );
    let img = dir.path().join("nope.img");
    let o = install(dir.path(), &["-c", &cfg, "--target", img.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(5), "{}", stderr(&o));
    assert!(stderr(&o).contains("--size"), "{}", stderr(&o));
    assert!(!img.exists());
}

#[test]
fn target_file_becomes_a_loop_device_for_the_stages_and_is_detached() {
    require_root();
    let dir = tempfile::tempdir_in("/var/tmp").unwrap();
    let d = dir.path().display().to_string();
    let img = dir.path().join("disk.img");
    let cfg = write_cfg(
        dir.path(),
        "c.yaml",
        &format!(
            "stages: [partitioning]
install: {{log_file: ''}}
storage: {{version: 1, config: [{{id: d1, type: disk, ptable: gpt, serial: NOT-THIS-ONE}}]}}
partitioning_commands:
  builtin: null
  '10': 'cp $CONFIG {d}/config.json; dev=$(grep -o \"/dev/loop[0-9][0-9]*\" $CONFIG | head -1); test -b $dev && cat /sys/block/${{dev#/dev/}}/loop/backing_file > {d}/backing'
"
        ),
    );
    let o = install(
        dir.path(),
        &[
            "-c",
            &cfg,
            "--target",
            img.to_str().unwrap(),
            "--size",
            "64M",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(std::fs::metadata(&img).unwrap().len(), 64 << 20);
    let c: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("config.json")).unwrap()).unwrap();
    let dev = c["block-meta"]["devices"][0].as_str().unwrap().to_string();
    assert!(dev.starts_with("/dev/loop"), "{dev}");
    assert_eq!(c["storage"]["config"][0]["path"], dev.as_str());
    assert!(c["storage"]["config"][0].get("serial").is_none());
    let backing = std::fs::read_to_string(dir.path().join("backing")).unwrap();
    assert_eq!(backing.trim(), img.display().to_string());
    // Detached at the end.
    let sys = format!(
        "/sys/block/{}/loop/backing_file",
        dev.trim_start_matches("/dev/")
    );
    let still = std::fs::read_to_string(&sys).unwrap_or_default();
    assert_ne!(
        still.trim(),
        img.display().to_string(),
        "{dev} still attached"
    );
}

// ---- Whole deployments onto loop devices, every stage real.

/// A small root with what MAAS and curtin look for: cloud-init and netplan markers and an
/// executable /curtin/curtin-hooks that leaves a mark.
fn small_root(dir: &Path) -> std::path::PathBuf {
    let root = dir.join("root");
    for d in [
        "etc/cloud/cloud.cfg.d",
        "etc/netplan",
        "usr/bin",
        "curtin",
        "root",
        "boot",
    ] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::write(
        root.join("etc/cloud/cloud.cfg"),
        "datasource_list: [MAAS]\n",
    )
    .unwrap();
    std::fs::write(root.join("usr/bin/cloud-init"), "#!/bin/sh\n").unwrap();
    std::fs::write(root.join("usr/bin/netplan"), "#!/bin/sh\n").unwrap();
    std::fs::write(
        root.join("etc/os-release"),
        "ID=demo\nNAME=\"deployer demo\"\n",
    )
    .unwrap();
    std::fs::write(
        root.join("curtin/curtin-hooks"),
        "#!/bin/sh\necho \"hooked $TARGET_MOUNT_POINT\"\nmkdir -p \"$TARGET_MOUNT_POINT/var/lib\" && echo ok > \"$TARGET_MOUNT_POINT/var/lib/curtin-hooks-ran\"\n",
    )
    .unwrap();
    testkit::sh(&format!(
        "chmod 755 {0}/curtin/curtin-hooks {0}/usr/bin/cloud-init {0}/usr/bin/netplan",
        root.display()
    ));
    root
}

fn webhook_cfg(srv: &Server) -> String {
    format!(
        "reporting: {{maas: {{type: webhook, endpoint: '{}', consumer_key: ck, token_key: tk, token_secret: tsecret}}}}\n",
        srv.url("/status")
    )
}

#[test]
fn tgz_install_onto_a_loop_device_from_http() {
    require_root();
    let dir = tempfile::tempdir_in("/var/tmp").unwrap();
    let root = small_root(dir.path());
    let tgz = dir.path().join("root.tgz");
    testkit::sh(&format!(
        "tar -C {} -czf {} .",
        root.display(),
        tgz.display()
    ));
    let srv = Server::start();
    srv.serve_file("/root.tgz", &tgz);
    let cfg = format!(
        "{}install: {{log_file: {d}/install.log}}\nblock-meta: {{format: gpt}}\ngrub: {{install_devices: []}}\nswap: {{size: 0}}\n",
        webhook_cfg(&srv),
        d = dir.path().display()
    );
    srv.serve_bytes("/config.yaml", cfg.into_bytes());
    let img = dir.path().join("disk.img");
    let o = install(
        dir.path(),
        &[
            "-c",
            &srv.url("/config.yaml"),
            "--target",
            img.to_str().unwrap(),
            "--size",
            "1G",
            &srv.url("/root.tgz"),
        ],
    );
    let events = srv.posted_json("/status");
    let names: Vec<String> = events
        .iter()
        .map(|e| format!("{} {} {}", e["name"], e["event_type"], e["result"]))
        .collect();
    assert!(o.status.success(), "{}\n{names:#?}", stderr(&o));
    for s in ["partitioning", "network", "extract", "curthooks", "hook"] {
        assert!(
            names.contains(&format!("\"cmd-install/stage-{s}\" \"finish\" \"SUCCESS\"")),
            "{names:#?}"
        );
    }
    assert!(names
        .iter()
        .any(|n| n.contains("cmd-install/stage-partitioning/builtin/cmd-block-meta")));
    // The root is on the image's first partition, with the hook's mark.
    let mnt = tempfile::tempdir_in("/var/tmp").unwrap();
    let disk = testkit::LoopDisk::from_file(img, dir);
    disk.partx();
    testkit::sh(&format!(
        "mount {} {}",
        disk.part(1).display(),
        mnt.path().display()
    ));
    let _m = testkit::MountGuard(mnt.path().to_path_buf());
    assert!(mnt.path().join("var/lib/curtin-hooks-ran").exists());
    assert!(mnt.path().join("etc/fstab").exists());
}

/// The inner events curtin reports and MAAS shows, with curtin's names and descriptions:
/// block-meta's clear-holders and one "configuring <type>: <id>" per storage item, extract's
/// "acquiring and extracting image from <uri>" per source.
#[test]
fn custom_storage_install_reports_curtins_inner_events() {
    require_root();
    let dir = tempfile::tempdir_in("/var/tmp").unwrap();
    let root = small_root(dir.path());
    let tgz = dir.path().join("root.tgz");
    testkit::sh(&format!(
        "tar -C {} -czf {} .",
        root.display(),
        tgz.display()
    ));
    let srv = Server::start();
    srv.serve_file("/root.tgz", &tgz);
    let cfg = format!(
        "{}install: {{log_file: {d}/install.log}}
storage:
  version: 1
  config:
    - {{id: disk0, type: disk, ptable: gpt, serial: REPLACED-BY-TARGET, wipe: superblock, grub_device: true}}
    - {{id: root-part, type: partition, device: disk0, size: 200M}}
    - {{id: root-fs, type: format, volume: root-part, fstype: ext4}}
    - {{id: root-mnt, type: mount, device: root-fs, path: /}}
grub: {{install_devices: []}}
swap: {{size: 0}}
",
        webhook_cfg(&srv),
        d = dir.path().display()
    );
    srv.serve_bytes("/config.yaml", cfg.into_bytes());
    let img = dir.path().join("disk.img");
    let o = install(
        dir.path(),
        &[
            "-c",
            &srv.url("/config.yaml"),
            "--target",
            img.to_str().unwrap(),
            "--size",
            "256M",
            &srv.url("/root.tgz"),
        ],
    );
    let events = srv.posted_json("/status");
    let seen: Vec<(String, String, String, String)> = events
        .iter()
        .map(|e| {
            let s = |k: &str| e[k].as_str().unwrap_or("").to_string();
            (s("name"), s("event_type"), s("description"), s("result"))
        })
        .collect();
    assert!(o.status.success(), "{}\n{seen:#?}", stderr(&o));
    let bm = "cmd-install/stage-partitioning/builtin/cmd-block-meta";
    let ex = "cmd-install/stage-extract/builtin/cmd-extract";
    let uri = srv.url("/root.tgz");
    for (name, desc) in [
        (
            format!("{bm}/clear-holders"),
            "removing previous storage devices".to_string(),
        ),
        (bm.to_string(), "configuring disk: disk0".into()),
        (bm.to_string(), "configuring partition: root-part".into()),
        (bm.to_string(), "configuring format: root-fs".into()),
        (bm.to_string(), "configuring mount: root-mnt".into()),
        (
            ex.to_string(),
            format!("acquiring and extracting image from {uri}"),
        ),
    ] {
        for ty in ["start", "finish"] {
            assert!(
                seen.iter()
                    .any(|(n, t, d, _)| *n == name && t == ty && *d == desc),
                "no {ty} event {name:?} {desc:?} in {seen:#?}"
            );
        }
    }
    // In curtin's order: clear-holders, then the items in list order, then the source.
    let pos = |desc: &str| {
        seen.iter()
            .position(|(_, t, d, _)| t == "start" && d == desc)
            .unwrap()
    };
    assert!(pos("removing previous storage devices") < pos("configuring disk: disk0"));
    assert!(pos("configuring disk: disk0") < pos("configuring partition: root-part"));
    assert!(pos("configuring format: root-fs") < pos("configuring mount: root-mnt"));
}

#[test]
fn ddgz_install_onto_a_loop_device_from_http() {
    require_root();
    let dir = tempfile::tempdir_in("/var/tmp").unwrap();
    let root = small_root(dir.path());
    let raw = dir.path().join("img.raw");
    let part = dir.path().join("part.ext4");
    testkit::sh(&format!(
        "truncate -s 200M {r} && sgdisk -o -n1:2048:0 -t1:8300 {r} >/dev/null && truncate -s 198M {p} && mkfs.ext4 -q -L cloudimg-rootfs -d {root} {p} && dd if={p} of={r} bs=1M seek=1 conv=notrunc status=none && gzip -k {r}",
        r = raw.display(),
        p = part.display(),
        root = root.display()
    ));
    let srv = Server::start();
    srv.serve_file("/img.raw.gz", dir.path().join("img.raw.gz"));
    let cfg = format!(
        "{}install: {{log_file: {}/install.log}}\n",
        webhook_cfg(&srv),
        dir.path().display()
    );
    let cfgfile = write_cfg(dir.path(), "c.yaml", &cfg);
    let img = dir.path().join("disk.img");
    let src = format!("dd-gz:{}", srv.url("/img.raw.gz"));
    let o = install(
        dir.path(),
        &[
            "-c",
            &cfgfile,
            "--target",
            img.to_str().unwrap(),
            "--size",
            "1G",
            &src,
        ],
    );
    let events = srv.posted_json("/status");
    assert!(o.status.success(), "{}\n{events:#?}", stderr(&o));
    let last = events.last().unwrap();
    assert_eq!(last["name"], "cmd-install");
    assert_eq!(last["result"], "SUCCESS");
    assert_eq!(last["image"]["type"], "dd-gz");
}

#[test]
fn curtin_install_as_maas_runs_it() {
    // MAAS's installer runs `curtin --install-deps install --config=... --config=... SOURCE`.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    let a = write_cfg(
        dir.path(),
        "config-000.cfg",
        &format!("#cloud-config\n{NO_BUILTINS}install: {{log_file: ''}}\n"),
    );
    let b = write_cfg(
        dir.path(),
        "config-001.cfg",
        &format!("late_commands: {{maas: 'cp $CONFIG {d}/config.json'}}\n"),
    );
    let curtin = testkit::curtin_dir().join("curtin");
    let o = Command::new(&curtin)
        .args(["--install-deps", "install"])
        .arg(format!("--config={a}"))
        .arg(format!("--config={b}"))
        .arg("http://127.0.0.1:9/root-tgz")
        .env_remove("CONFIG")
        .env_remove("CURTIN_REPORTSTACK")
        .env("DEPLOYER_CMDLINE_FILE", dir.path().join("none"))
        .env("DEPLOYER_LOCK_FILE", dir.path().join("install.lock"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let c: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("config.json")).unwrap()).unwrap();
    assert_eq!(
        c["sources"]["00_cmdline"],
        serde_json::json!({"type": "tgz", "uri": "http://127.0.0.1:9/root-tgz"})
    );
    assert_eq!(c["network_commands"]["builtin"], Value::Null);
}

#[test]
fn an_early_failure_still_reports_and_leaves_the_error_tarball() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start();
    let d = dir.path().display().to_string();
    let cfg = write_cfg(
        dir.path(),
        "c.yaml",
        &format!(
            "{}install: {{log_file: {d}/install.log, error_tarfile: {d}/err.tar}}\n",
            webhook_cfg(&srv)
        ),
    );
    // A directory is neither a disk nor a disk image file.
    let o = install(
        dir.path(),
        &["-c", &cfg, "--target", &d, "http://127.0.0.1:9/r.tgz"],
    );
    assert_eq!(o.status.code(), Some(5), "{}", stderr(&o));
    assert!(stderr(&o).contains("neither a block device nor a disk image file"));
    assert!(dir.path().join("err.tar").exists());
    let events = srv.posted_json("/status");
    let last = events.last().unwrap();
    assert_eq!(last["name"], "cmd-install");
    assert_eq!(last["result"], "FAIL");
    let log = std::fs::read_to_string(dir.path().join("install.log")).unwrap();
    assert!(log.contains("Installation failed"), "{log}");
}

/// `install.log_file_append` read as curtin reads it (PyYAML, then `if not log_file_append`):
/// `no` is false and clears the log, `'no'` is a non-empty string and appends, as `yes` does.
#[test]
fn log_file_append_is_read_as_curtin_reads_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    let log = dir.path().join("install.log");
    let run = |append: &str| {
        let cfg = write_cfg(
            dir.path(),
            "c.yaml",
            &format!("{NO_BUILTINS}stages: [early]\ninstall: {{log_file: {d}/install.log, log_file_append: {append}}}\n"),
        );
        let o = install(dir.path(), &["-c", &cfg, "http://127.0.0.1:9/root.tgz"]);
        assert!(o.status.success(), "{}", stderr(&o));
        std::fs::read_to_string(&log)
            .unwrap()
            .matches("Installation started")
            .count()
    };
    assert_eq!(run("no"), 1);
    assert_eq!(run("yes"), 2);
    assert_eq!(run("'no'"), 3);
    assert_eq!(run("Off"), 1);
}
