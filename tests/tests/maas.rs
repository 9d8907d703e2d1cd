//! A deployment as MAAS starts it: `deployer install` with nothing but `cloud-config-url=` on
//! the kernel command line, testkit's server acting as MAAS's metadata service (anonymous
//! preseed, OAuth-checked installer, the status webhook), an installer archive written here in
//! curtin pack's format, a tgz onto a loop device. Also: what is not a deployment (exit 0, the
//! disk untouched, no events), broken installers (a clear error and a FAIL event), one
//! install at a time.

use std::path::{Path, PathBuf};
use std::process::Output;

use deployer::maas::installer::pack;
use testkit::{require_root, sh, LoopDisk, MountGuard, Server};

const PRESEED: &str = "/MAAS/metadata/latest/by-id/node-1/";
const INSTALLER_38: &str = "/MAAS/metadata/curtin/2012-03-01/curtin-installer";
const USER_DATA_37: &str = "/MAAS/metadata/curtin/latest/user-data";
const STATUS: &str = "/MAAS/metadata/status/node-1";
/// MAAS's preseed reboots after the install (cloud-init's power_state, which deployer applies
/// when its condition holds): here the condition never holds, or the test machine reboots.
const NO_REBOOT: &str = "deployer-test-never-reboot";

/// MAAS's side: the preseed (a deployment's or a commissioning one's) and the webhook.
fn maas(deploying: bool) -> Server {
    let srv = Server::start();
    let md = if deploying {
        srv.url("/MAAS/metadata/curtin")
    } else {
        srv.url("/MAAS/metadata/")
    };
    let preseed = format!(
        "#cloud-config\ndatasource:\n  MAAS: {{metadata_url: '{md}', consumer_key: ck, token_key: tk, token_secret: ts}}\n{}power_state: {{delay: now, mode: reboot, timeout: 1800, condition: 'test -e /nonexistent/{NO_REBOOT}'}}\n",
        reporting(&srv)
    );
    srv.serve_bytes(PRESEED, preseed.into_bytes());
    srv
}

fn reporting(srv: &Server) -> String {
    format!(
        "reporting:\n  maas: {{type: webhook, endpoint: '{}', consumer_key: ck, token_key: tk, token_secret: ts}}\n",
        srv.url(STATUS)
    )
}

/// `deployer install [args]` booted with only `cloud-config-url=`.
fn boot(dir: &Path, srv: &Server, args: &[&str]) -> Output {
    let cmdline = dir.join("cmdline");
    std::fs::write(
        &cmdline,
        format!(
            "ro root=squash:http://x/ ip=::::node-1:BOOTIF:dhcp cloud-config-url={}?op=get_preseed ---\n",
            srv.url(PRESEED)
        ),
    )
    .unwrap();
    testkit::deployer()
        .arg("install")
        .args(args)
        .env_remove("CONFIG")
        .env_remove("CURTIN_REPORTSTACK")
        .env_remove("DEPLOYER_REPORT_DOWN")
        .env("DEPLOYER_CMDLINE_FILE", &cmdline)
        .env("DEPLOYER_OAUTH_SKEW_FILE", dir.join("oauth_skew.json"))
        .env("DEPLOYER_LOCK_FILE", dir.join("install.lock"))
        .env("DEPLOYER_MAAS_DIR", dir.join("curtin"))
        .env(
            "DEPLOYER_MAAS_KERNEL_CMDLINE_CFG",
            dir.join("cloud.cfg.d/91_kernel_cmdline_url.cfg"),
        )
        .env("DEPLOYER_FETCH_BACKOFF_MS", "10")
        .env("DEPLOYER_REPORT_FLUSH_SECS", "10")
        .output()
        .expect("run deployer")
}

fn text(o: &Output) -> String {
    format!(
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A root with what MAAS's checks look for and a Python `/curtin/curtin-hooks` in the shape of
/// packer-maas's: environment and config through curtin, `curtin.__file__` left in the target.
fn root_tgz(dir: &Path) -> PathBuf {
    let root = dir.join("root");
    for d in ["etc/cloud/cloud.cfg.d", "usr/bin", "curtin", "var/lib"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::write(root.join("etc/os-release"), "ID=demo\n").unwrap();
    std::fs::write(root.join("usr/bin/cloud-init"), "#!/bin/sh\n").unwrap();
    std::fs::write(root.join("usr/bin/netplan"), "#!/bin/sh\n").unwrap();
    std::fs::write(
        root.join("curtin/curtin-hooks"),
        r#"#!/usr/bin/env python3
import json, os, sys
import curtin
try:
    from curtin.util import load_command_environment
    from curtin.config import load_command_config
    state = load_command_environment()
    cfg = load_command_config(None, state)
    target = state["target"]
except ImportError:
    target, cfg = os.environ["TARGET_MOUNT_POINT"], {}
with open(os.path.join(target, "var/lib/hook-saw"), "w") as f:
    json.dump({"curtin": curtin.__file__, "x": cfg.get("x"),
               "deployer_compat": getattr(curtin, "DEPLOYER_COMPAT", False),
               "pythonpath": os.environ.get("PYTHONPATH", "")}, f)
"#,
    )
    .unwrap();
    sh(&format!(
        "chmod 755 {0}/curtin/curtin-hooks {0}/usr/bin/cloud-init {0}/usr/bin/netplan",
        root.display()
    ));
    let tgz = dir.join("root.tgz");
    sh(&format!(
        "tar -C {} -czf {} .",
        root.display(),
        tgz.display()
    ));
    tgz
}

/// The installer's configs: storage (simple, GPT), the log, reporting, and two fragments
/// whose merge order shows (`x.b` from the later one).
fn configs(dir: &Path, srv: &Server) -> Vec<(String, String)> {
    let d = dir.display();
    vec![
        (
            "configs/config-000.cfg".into(),
            "x: {a: 1, b: 1}\nblock-meta: {format: gpt}\ngrub: {install_devices: []}\n".into(),
        ),
        (
            "configs/config-001.cfg".into(),
            format!(
                "#cloud-config\n{}install: {{log_file: {d}/install.log, post_files: [{d}/install.log]}}\n",
                reporting(srv)
            ),
        ),
        (
            "configs/config-002.cfg".into(),
            format!("x: {{b: 2}}\nlate_commands: {{maas: ['sh', '-c', 'cp $CONFIG {d}/config.json']}}\n"),
        ),
    ]
}

fn installer(cfgs: &[(String, String)], extra: &[(&str, &[u8])], source: &str) -> String {
    let mut files: Vec<(&str, &[u8])> = cfgs
        .iter()
        .map(|(p, t)| (p.as_str(), t.as_bytes()))
        .collect();
    files.extend_from_slice(extra);
    files.push((
        "bin/curtin",
        b"#!/bin/sh\necho MAAS's curtin must not run >&2; exit 9\n",
    ));
    let mut cmd = vec!["curtin", "--install-deps", "install"];
    let flags: Vec<String> = cfgs.iter().map(|(p, _)| format!("--config={p}")).collect();
    cmd.extend(flags.iter().map(String::as_str));
    cmd.push(source);
    pack(&files, &cmd).unwrap()
}

fn events(srv: &Server) -> Vec<serde_json::Value> {
    srv.posted_json(STATUS)
}

/// Deploy from the installer at `path`; returns what the hook saw and the merged config.
fn deploy(path: &str, extra: &[(&str, &[u8])]) -> (serde_json::Value, serde_json::Value) {
    require_root();
    let dir = tempfile::tempdir_in("/var/tmp").unwrap();
    let srv = maas(true);
    let tgz = root_tgz(dir.path());
    srv.serve_file("/images/root.tgz", &tgz);
    let inst = installer(
        &configs(dir.path(), &srv),
        extra,
        &srv.url("/images/root.tgz"),
    );
    srv.serve_bytes(path, inst.into_bytes());
    srv.require_auth(path, "oauth_token=\"tk\"");
    let img = dir.path().join("disk.img");
    let o = boot(
        dir.path(),
        &srv,
        &["--target", img.to_str().unwrap(), "--size", "1G"],
    );
    let ev = events(&srv);
    assert!(o.status.success(), "{}\n{ev:#?}", text(&o));
    let last = ev.last().unwrap();
    assert_eq!(
        (last["name"].as_str(), last["result"].as_str()),
        (Some("cmd-install"), Some("SUCCESS"))
    );
    // Signed as MAAS signs: PLAINTEXT, "&" + token secret.
    let req = srv.requests().into_iter().find(|r| r.path == path).unwrap();
    let auth = req.header("authorization").unwrap().to_string();
    for f in [
        "oauth_signature_method=\"PLAINTEXT\"",
        "oauth_consumer_key=\"ck\"",
        "oauth_signature=\"%26ts\"",
    ] {
        assert!(auth.contains(f), "{f} not in {auth}");
    }
    let cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("config.json")).unwrap()).unwrap();
    // What cloud-init would have saved for MAAS's scripts and preseeds.
    let saved =
        std::fs::read_to_string(dir.path().join("cloud.cfg.d/91_kernel_cmdline_url.cfg")).unwrap();
    assert!(
        saved.starts_with("#cloud-config") && saved.contains("token_secret: ts"),
        "{saved}"
    );
    let mnt = tempfile::tempdir_in("/var/tmp").unwrap();
    let disk = LoopDisk::from_file(img, dir);
    disk.partx();
    sh(&format!(
        "mount {} {}",
        disk.part(1).display(),
        mnt.path().display()
    ));
    let _m = MountGuard(mnt.path().to_path_buf());
    let saw: serde_json::Value =
        serde_json::from_slice(&std::fs::read(mnt.path().join("var/lib/hook-saw")).unwrap())
            .unwrap();
    assert!(mnt.path().join("etc/fstab").is_file());
    (saw, cfg)
}

#[test]
fn installer_with_its_curtin_package_deploys_and_the_hook_imports_that_package() {
    let pkg: &[(&str, &[u8])] = &[("curtin/__init__.py", b"MAAS_PACKAGE = True\n")];
    let (saw, cfg) = deploy(INSTALLER_38, pkg);
    let curtin = saw["curtin"].as_str().unwrap();
    // The installer's package, extracted where curtin's archive extracts itself.
    assert!(curtin.ends_with("/curtin/curtin/__init__.py"), "{saw}");
    assert!(!saw["deployer_compat"].as_bool().unwrap(), "{saw}");
    // The configs merged in COMMAND's order, the source from COMMAND, as curtin stores it.
    assert_eq!(cfg["x"], serde_json::json!({"a": 1, "b": 2}));
    assert_eq!(cfg["sources"]["00_cmdline"]["type"], "tgz");
    assert!(cfg["sources"]["00_cmdline"]["uri"]
        .as_str()
        .unwrap()
        .ends_with("/images/root.tgz"));
    // MAAS's own preseed is not part of the install (curtin never sees it).
    assert!(cfg.get("power_state").is_none(), "{cfg}");
}

#[test]
fn installer_without_a_package_from_maas_37_user_data_uses_deployers_own() {
    let (saw, _cfg) = deploy(USER_DATA_37, &[]);
    let curtin = saw["curtin"].as_str().unwrap();
    // deployer's own, where curtin's archive would have put its package (the /curtin of a
    // real ephemeral OS; $DEPLOYER_MAAS_DIR here).
    assert!(curtin.ends_with("/curtin/curtin/__init__.py"), "{saw}");
    assert!(saw["deployer_compat"].as_bool().unwrap(), "{saw}");
    // The hook read the config through deployer's curtin.config.
    assert_eq!(saw["x"], serde_json::json!({"a": 1, "b": 2}));
}

/// A disk image with known bytes, and its hash, to show it untouched.
fn untouched_disk(dir: &Path) -> (PathBuf, String) {
    let img = dir.join("disk.img");
    sh(&format!(
        "head -c 4M /dev/urandom > {} && truncate -s 64M {}",
        img.display(),
        img.display()
    ));
    let sum = sh(&format!("sha256sum {}", img.display()));
    (img, sum)
}

#[test]
fn not_a_deployment_exits_0_touching_nothing() {
    // Commissioning (any boot but a deployment's) and a node MAAS has no installer for.
    for deploying in [false, true] {
        let dir = tempfile::tempdir_in("/var/tmp").unwrap();
        let srv = maas(deploying);
        let (img, sum) = untouched_disk(dir.path());
        let o = boot(dir.path(), &srv, &["--target", img.to_str().unwrap()]);
        assert!(o.status.success(), "{}", text(&o));
        let out = String::from_utf8_lossy(&o.stdout);
        assert_eq!(out.lines().count(), 1, "{}", text(&o));
        let want = if deploying {
            "no curtin installer"
        } else {
            "not a deployment"
        };
        assert!(out.contains(want), "{}", text(&o));
        assert!(events(&srv).is_empty(), "{:#?}", events(&srv));
        assert_eq!(sh(&format!("sha256sum {}", img.display())), sum);
        assert!(!dir.path().join("curtin").exists());
    }
}

#[test]
fn broken_installers_fail_with_the_reason_and_a_fail_event() {
    let dir0 = tempfile::tempdir().unwrap();
    let srv0 = Server::start();
    let good = installer(
        &configs(dir0.path(), &srv0),
        &[],
        "http://127.0.0.1:9/r.tgz",
    );
    let md5 = &good[good.find("MD5SUM='").unwrap() + 8..][..32];
    let no_command = pack(&[("configs/config-000.cfg", b"{}\n")], &[""]).unwrap();
    let cases = [
        (
            good.replace(md5, "0123456789abcdef0123456789abcdef"),
            "MD5SUM",
        ),
        (good[..good.len() - 300].to_string(), "truncated"),
        (no_command, "no COMMAND"),
        // Made below for its server: a COMMAND without a source and configs without one,
        // refused before any stage, reported through the installer's reporting config.
        (String::new(), "nothing to install"),
    ];
    for (archive, needle) in cases {
        let dir = tempfile::tempdir_in("/var/tmp").unwrap();
        let srv = maas(true);
        let archive = if archive.is_empty() {
            let rep = reporting(&srv);
            pack(
                &[("configs/config-000.cfg", rep.as_bytes())],
                &["curtin", "install", "--config=configs/config-000.cfg"],
            )
            .unwrap()
        } else {
            archive
        };
        srv.serve_bytes(INSTALLER_38, archive.into_bytes());
        let (img, sum) = untouched_disk(dir.path());
        let o = boot(dir.path(), &srv, &["--target", img.to_str().unwrap()]);
        assert!(!o.status.success(), "{needle}: {}", text(&o));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(needle), "{needle}: {}", text(&o));
        let ev = events(&srv);
        let last = ev.last().unwrap_or_else(|| panic!("{needle}: no events"));
        assert_eq!(last["name"], "cmd-install", "{needle}: {ev:#?}");
        assert_eq!(last["result"], "FAIL", "{needle}: {ev:#?}");
        assert!(
            last["description"].as_str().unwrap().contains(needle),
            "{needle}: {last}"
        );
        assert_eq!(sh(&format!("sha256sum {}", img.display())), sum);
    }
}

#[test]
fn a_second_install_is_refused_naming_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let cfg = dir.path().join("c.yaml");
    std::fs::write(
        &cfg,
        format!("stages: [early]\ninstall: {{log_file: ''}}\nearly_commands: {{a: 'touch {d}/started; sleep 4'}}\n"),
    )
    .unwrap();
    let run = || {
        let mut c = testkit::deployer();
        c.args(["install", "-c", cfg.to_str().unwrap()])
            .env_remove("CONFIG")
            .env("DEPLOYER_CMDLINE_FILE", dir.path().join("none"))
            .env("DEPLOYER_LOCK_FILE", dir.path().join("install.lock"));
        c
    };
    let mut first = run().spawn().unwrap();
    let started = dir.path().join("started");
    for _ in 0..100 {
        if started.exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(started.exists());
    let second = run().output().unwrap();
    assert!(first.wait().unwrap().success());
    assert!(!second.status.success());
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(
        err.contains(&format!("PID {}", first.id())) && err.contains("another install"),
        "{err}"
    );
}
