//! The deployed target on a real loop device: in-target (binds, resolv.conf, policy-rc.d,
//! teardown), the image's hooks and their environment, finalize, the image checks, MAAS's
//! late commands as sent, and the builtin curthooks (network, cloudconfig, fstab, bootloader).
//!
//! The root is small and real: busybox-static as /bin/sh and friends, and shell stand-ins for
//! cloud-init, netplan and the grub/initramfs tools that record how they were called.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use testkit::{sh, LoopDisk, MountGuard};

/// A mounted ext4 root on a loop device, unmounted and detached on drop.
struct Root {
    mnt: PathBuf,
    _guard: MountGuard,
    _disk: LoopDisk,
    _dir: tempfile::TempDir,
}

fn write_exec(path: &Path, text: &str) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
}

/// Tools the stand-ins log to (inside the target).
const TOOL_LOG: &str = "var/log/tools.log";

fn stub(name: &str) -> String {
    format!("#!/bin/sh\necho \"{name} $*\" >> /{TOOL_LOG}\n")
}

impl Root {
    /// `os_id`: os-release ID; `cloud_init`: None = absent, Some(v2) = present, with or without
    /// the NETWORK_CONFIG_V2 feature; `netplan`: a netplan executable.
    fn new(os_id: &str, cloud_init: Option<bool>, netplan: bool) -> Root {
        testkit::require_root();
        let disk = LoopDisk::new(64 << 20);
        sh(&format!("mkfs.ext4 -q -F {}", disk.dev.display()));
        let dir = tempfile::tempdir().unwrap();
        let mnt = dir.path().join("target");
        fs::create_dir(&mnt).unwrap();
        sh(&format!("mount {} {}", disk.dev.display(), mnt.display()));
        let guard = MountGuard(mnt.clone());
        let r = |p: &str| mnt.join(p);
        for d in [
            "bin", "etc", "usr/bin", "usr/sbin", "var/log", "tmp", "root", "dev", "proc", "sys",
            "run",
        ] {
            fs::create_dir_all(r(d)).unwrap();
        }
        fs::copy("/bin/busybox", r("bin/busybox")).unwrap();
        for a in [
            "sh", "cat", "echo", "env", "test", "ls", "grep", "mkdir", "touch", "sleep",
        ] {
            std::os::unix::fs::symlink("busybox", r(&format!("bin/{a}"))).unwrap();
        }
        // MAAS's checks call bash; busybox has no bash applet.
        write_exec(&r("bin/bash"), "#!/bin/sh\nexec /bin/sh \"$@\"\n");
        write_exec(&r("usr/bin/true"), "#!/bin/sh\nexit 0\n");
        fs::write(
            r("etc/os-release"),
            format!("NAME=\"Test\"\nID={os_id}\nVERSION_ID=\"1\"\n"),
        )
        .unwrap();
        fs::write(r("etc/resolv.conf"), "nameserver 192.0.2.99\n").unwrap();
        fs::write(r("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
        fs::write(r("etc/group"), "root:x:0:\n").unwrap();
        if let Some(v2) = cloud_init {
            let features = if v2 {
                "NETWORK_CONFIG_V1\nNETWORK_CONFIG_V2"
            } else {
                "NETWORK_CONFIG_V1"
            };
            write_exec(
                &r("usr/bin/cloud-init"),
                &format!(
                    "#!/bin/sh\ncase \"$1\" in\n--version) echo '/usr/bin/cloud-init 24.1';;\nfeatures) printf '%s\\n' '{}';;\n*) exit 2;;\nesac\n",
                    features.replace('\n', "' '")
                ),
            );
        }
        if netplan {
            write_exec(
                &r("usr/sbin/netplan"),
                "#!/bin/sh\n[ \"$1\" = info ] && echo 'netplan.io: {features: []}'\n",
            );
        }
        for t in ["update-initramfs", "update-grub", "grub-install"] {
            write_exec(&r(&format!("usr/sbin/{t}")), &stub(t));
        }
        Root {
            mnt,
            _guard: guard,
            _disk: disk,
            _dir: dir,
        }
    }

    fn path(&self, p: &str) -> PathBuf {
        self.mnt.join(p)
    }

    fn read(&self, p: &str) -> String {
        fs::read_to_string(self.path(p)).unwrap_or_else(|e| panic!("reading {p}: {e}"))
    }

    /// Mounts at or under the root other than the root itself.
    fn extra_mounts(&self) -> Vec<String> {
        let m = fs::read_to_string("/proc/mounts").unwrap();
        let root = self.mnt.to_string_lossy().into_owned();
        m.lines()
            .filter_map(|l| l.split(' ').nth(1))
            .filter(|p| p.starts_with(&format!("{root}/")))
            .map(str::to_string)
            .collect()
    }
}

fn curtin(args: &[&str]) -> Output {
    Command::new(testkit::curtin_dir().join("curtin"))
        .args(args)
        .output()
        .expect("run curtin")
}

fn deployer(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = testkit::deployer();
    c.args(args);
    // A stage run alone: no install environment from the test runner.
    for k in [
        "TARGET_MOUNT_POINT",
        "CONFIG",
        "OUTPUT_FSTAB",
        "CURTIN_REPORTSTACK",
    ] {
        c.env_remove(k);
    }
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run deployer")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn curtin_in_target_runs_chrooted_and_unmounts_everything() {
    let root = Root::new("ubuntu", Some(true), true);
    let t = root.mnt.to_string_lossy().into_owned();
    let out = curtin(&[
        "in-target",
        "-t",
        &t,
        "--",
        "sh",
        "-c",
        "cat /etc/os-release",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("ID=ubuntu"));
    assert_eq!(
        root.extra_mounts(),
        Vec::<String>::new(),
        "everything unmounted"
    );

    // Inside: /proc, /dev, /sys bound; SYSTEMD_OFFLINE; policy-rc.d forbids services; the
    // host's resolv.conf.
    let out = curtin(&[
        "in-target", "-t", &t, "--", "sh", "-c",
        "test -e /proc/self/mounts && test -e /dev/null && test -d /sys/class && echo offline=$SYSTEMD_OFFLINE; /usr/sbin/policy-rc.d x start; echo policy=$?; cat /etc/resolv.conf",
    ]);
    let o = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{}", text(&out));
    assert!(o.contains("offline=1") && o.contains("policy=101"), "{o}");
    let host_resolv = fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    if !host_resolv.is_empty() {
        assert!(
            o.contains(host_resolv.lines().next().unwrap()),
            "host resolv.conf inside: {o}"
        );
    }
    // Restored afterwards; no policy-rc.d left behind.
    assert_eq!(root.read("etc/resolv.conf"), "nameserver 192.0.2.99\n");
    assert!(!root.path("usr/sbin/policy-rc.d").exists());
    assert_eq!(root.extra_mounts(), Vec::<String>::new());

    // Its own PID namespace and /proc: the command is PID 1, and a daemon it leaves behind dies
    // with it, so nothing holds the target afterwards.
    // A sleep of a duration no other process on the machine uses, so that the check below sees
    // only ours (the same test may run in parallel elsewhere).
    let marker = 100_000 + std::process::id() % 100_000;
    let started = std::time::Instant::now();
    let out = curtin(&[
        "in-target",
        "-t",
        &t,
        "--",
        "sh",
        "-c",
        &format!("echo pid=$$; ls /proc | grep -c '^[0-9]' > /nprocs; sleep {marker} & echo bg"),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("pid=1"),
        "{}",
        text(&out)
    );
    assert!(
        root.read("nprocs").trim().parse::<u32>().unwrap() < 5,
        "own /proc"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(60));
    // The kernel kills the rest of a PID namespace when its init exits; reaping is asynchronous.
    let mut stray = String::new();
    for _ in 0..50 {
        stray = sh(&format!("ps -eo args | grep -c '^sleep {marker}$' || true"));
        if stray.trim() == "0" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(stray.trim(), "0", "the background sleep was killed");
    assert_eq!(root.extra_mounts(), Vec::<String>::new());

    // The exit code passes through, and a failure tears down too.
    let out = curtin(&[
        "in-target",
        "-t",
        &t,
        "--",
        "sh",
        "-c",
        "echo oops >&2; exit 7",
    ]);
    assert_eq!(out.status.code(), Some(7), "{}", text(&out));
    assert_eq!(root.extra_mounts(), Vec::<String>::new());
    // TARGET_MOUNT_POINT is the default target.
    let out = Command::new(testkit::curtin_dir().join("curtin"))
        .args(["in-target", "--", "cat", "/etc/os-release"])
        .env("TARGET_MOUNT_POINT", &t)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    // Without `--` (curtin allows it), and options of the command are the command's.
    let out = curtin(&["in-target", "-t", &t, "ls", "-a", "/etc"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("os-release"));
    // A missing target is a clear error.
    let out = curtin(&["in-target", "-t", "/nonexistent/target", "--", "true"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("/nonexistent/target"), "{}", text(&out));
}

/// MAAS's own validation late commands, exactly as MAAS sends them.
fn maas_late_commands() -> yaml_serde::Value {
    yaml_serde::from_str(
        r#"
98-validate-custom-image-has-cloud-init: [curtin, in-target, --, bash, -c, 'cloud-init --version || (echo "cloud-init not detected, MAAS will not be able to configure this machine properly" && exit 1)']
99-validate-custom-image-has-netplan: [curtin, in-target, --, bash, -c, 'netplan info || (echo "netplan not detected, MAAS will not be able to configure this machine properly" && exit 1)']
"#,
    )
    .unwrap()
}

fn run_late(root: &Root) -> anyhow::Result<()> {
    let cmds = deployer::commands::commands_from_value("late", &maas_late_commands())?;
    let path = format!(
        "{}:{}",
        testkit::curtin_dir().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut opts = deployer::commands::RunOpts {
        env: vec![
            ("PATH".into(), path.into()),
            (
                "TARGET_MOUNT_POINT".into(),
                root.mnt.clone().into_os_string(),
            ),
        ],
        echo: false,
        ..Default::default()
    };
    deployer::commands::run_stage("late", &cmds, &mut opts)
}

#[test]
fn maas_late_commands_work_as_sent() {
    let good = Root::new("ubuntu", Some(true), true);
    run_late(&good).unwrap();
    assert_eq!(good.extra_mounts(), Vec::<String>::new());

    let no_netplan = Root::new("ubuntu", Some(true), false);
    let err = deployer::error::render(&run_late(&no_netplan).unwrap_err());
    assert!(
        err.contains("99-validate-custom-image-has-netplan"),
        "{err}"
    );
    assert!(
        err.contains(
            "netplan not detected, MAAS will not be able to configure this machine properly"
        ),
        "the failing late command's output is in the error: {err}"
    );
    assert_eq!(no_netplan.extra_mounts(), Vec::<String>::new());
}

#[test]
fn image_without_cloud_init_is_refused_with_maas_message() {
    let root = Root::new("ubuntu", None, true);
    let cfg = root._dir.path().join("cfg.yaml");
    fs::write(
        &cfg,
        "network: {version: 2, ethernets: {eth0: {dhcp4: true}}}\n",
    )
    .unwrap();
    let t = root.mnt.to_string_lossy().into_owned();
    let out = deployer(
        &[
            "curthooks",
            "-c",
            cfg.to_str().unwrap(),
            "--target-mount",
            &t,
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(7), "{}", text(&out));
    assert!(
        text(&out).contains(
            "cloud-init not detected, MAAS will not be able to configure this machine properly"
        ),
        "{}",
        text(&out)
    );
    // Nothing was configured in the target.
    assert!(!root.path("etc/cloud").exists());
    assert!(!root.path(TOOL_LOG).exists());
    // Ubuntu without netplan: MAAS's netplan message.
    let root = Root::new("ubuntu", Some(true), false);
    let t = root.mnt.to_string_lossy().into_owned();
    let out = deployer(
        &[
            "curthooks",
            "-c",
            cfg.to_str().unwrap(),
            "--target-mount",
            &t,
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(7), "{}", text(&out));
    assert!(text(&out).contains(
        "netplan not detected, MAAS will not be able to configure this machine properly"
    ));
}

const HOOK: &str = r#"#!/bin/sh
# A test image hook: runs on the host, records what curtin gives hooks.
set -e
env > "$TARGET_MOUNT_POINT/hook-env"
cp "$CONFIG" "$TARGET_MOUNT_POINT/hook-config.json"
command -v curtin > "$TARGET_MOUNT_POINT/hook-curtin"
readlink -f "$(command -v curtin)" > "$TARGET_MOUNT_POINT/hook-curtin-real"
ls "$(dirname "$OUTPUT_FSTAB")" > "$TARGET_MOUNT_POINT/hook-state"
test -d "$WORKING_DIR"
curtin in-target -- sh -c 'echo in-target-from-hook > /from-hook'
"#;

fn env_map(text: &str) -> std::collections::BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn curtin_hooks_get_curtins_environment() {
    let root = Root::new("ubuntu", Some(true), true);
    write_exec(&root.path("curtin/curtin-hooks"), HOOK);
    let pydir = root._dir.path().join("py");
    fs::create_dir_all(pydir.join("curtin")).unwrap();
    fs::write(pydir.join("curtin/__init__.py"), "").unwrap();
    let cfg = root._dir.path().join("cfg.yaml");
    fs::write(
        &cfg,
        format!(
            "sources: {{00_cmdline: {{type: tgz, uri: 'http://192.0.2.1/root.tgz'}}}}\n\
             proxy: {{http_proxy: 'http://192.0.2.2:3128', no_proxy: 'localhost'}}\n\
             network: {{version: 1, config: [{{type: physical, name: eth0, subnets: [{{type: dhcp}}]}}]}}\n\
             deployer: {{python_curtin: '{}'}}\n\
             marker: 42\n",
            pydir.display()
        ),
    )
    .unwrap();
    let t = root.mnt.to_string_lossy().into_owned();
    let out = deployer(
        &[
            "curthooks",
            "-c",
            cfg.to_str().unwrap(),
            "--target-mount",
            &t,
        ],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out));
    let env = env_map(&root.read("hook-env"));
    assert_eq!(env["TARGET_MOUNT_POINT"], t);
    for k in [
        "CONFIG",
        "WORKING_DIR",
        "OUTPUT_FSTAB",
        "OUTPUT_NETWORK_CONFIG",
        "OUTPUT_NETWORK_STATE",
        "OUTPUT_INTERFACES",
        "CURTIN_REPORTSTACK",
        "CURTIN_VERBOSITY",
        "PATH",
        "PYTHONPATH",
    ] {
        assert!(
            env.contains_key(k),
            "{k} missing from the hook's env: {env:?}"
        );
    }
    let state = Path::new(&env["OUTPUT_FSTAB"])
        .parent()
        .unwrap()
        .to_path_buf();
    assert_eq!(Path::new(&env["CONFIG"]), state.join("config"));
    assert_eq!(
        Path::new(&env["OUTPUT_NETWORK_CONFIG"]),
        state.join("network_config")
    );
    assert_eq!(
        Path::new(&env["OUTPUT_NETWORK_STATE"]),
        state.join("network_state")
    );
    assert_eq!(
        Path::new(&env["OUTPUT_INTERFACES"]),
        state.join("interfaces")
    );
    assert!(env["WORKING_DIR"].ends_with("/scratch"));
    assert_eq!(env["CURTIN_REPORTSTACK"], "cmd-curthooks");
    assert_eq!(env["http_proxy"], "http://192.0.2.2:3128");
    assert_eq!(env["no_proxy"], "localhost");
    assert_eq!(
        env["PYTHONPATH"].split(':').next().unwrap(),
        pydir.to_str().unwrap()
    );
    let state_files = root.read("hook-state");
    for f in ["config", "fstab", "network_config", "network_state"] {
        assert!(
            state_files.lines().any(|l| l == f),
            "state/{f} exists: {state_files}"
        );
    }
    // PATH leads to a `curtin` that is deployer.
    let curtin = root.read("hook-curtin");
    let first = env["PATH"].split(':').next().unwrap().to_string();
    assert_eq!(curtin.trim(), format!("{first}/curtin"));
    assert_eq!(
        Path::new(root.read("hook-curtin-real").trim()),
        fs::canonicalize(testkit::deployer_bin()).unwrap()
    );
    // CONFIG is the merged config as JSON.
    let cfg_json: serde_json::Value = serde_json::from_str(&root.read("hook-config.json")).unwrap();
    assert_eq!(cfg_json["marker"], 42);
    assert_eq!(
        cfg_json["sources"]["00_cmdline"]["uri"],
        "http://192.0.2.1/root.tgz"
    );
    assert_eq!(cfg_json["network"]["config"][0]["name"], "eth0");
    // The hook replaced the builtin hooks; its in-target call worked and cleaned up.
    assert_eq!(root.read("from-hook"), "in-target-from-hook\n");
    assert!(!root
        .path("etc/cloud/cloud.cfg.d/50-curtin-networking.cfg")
        .exists());
    assert_eq!(root.extra_mounts(), Vec::<String>::new());
    // The stage's own working dir is gone.
    assert!(!state.exists(), "{} left behind", state.display());
}

#[test]
fn failing_or_unexecutable_hook_fails_the_stage_with_its_output() {
    let root = Root::new("ubuntu", Some(true), true);
    let t = root.mnt.to_string_lossy().into_owned();
    let cfg = root._dir.path().join("cfg.yaml");
    fs::write(&cfg, "{}\n").unwrap();
    write_exec(
        &root.path("curtin/curtin-hooks"),
        "#!/bin/sh\necho 'hook says no' >&2\nexit 3\n",
    );
    let out = deployer(
        &[
            "curthooks",
            "-c",
            cfg.to_str().unwrap(),
            "--target-mount",
            &t,
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(6), "{}", text(&out));
    assert!(
        text(&out).contains("hook says no") && text(&out).contains("exit code 3"),
        "{}",
        text(&out)
    );
    fs::set_permissions(
        root.path("curtin/curtin-hooks"),
        fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let out = deployer(
        &[
            "curthooks",
            "-c",
            cfg.to_str().unwrap(),
            "--target-mount",
            &t,
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(6), "{}", text(&out));
    assert!(text(&out).contains("not executable"), "{}", text(&out));
}

#[test]
fn finalize_runs_in_the_hook_stage() {
    let root = Root::new("ubuntu", Some(true), true);
    let t = root.mnt.to_string_lossy().into_owned();
    let cfg = root._dir.path().join("cfg.yaml");
    fs::write(&cfg, "{}\n").unwrap();
    // No finalize: nothing happens.
    let out = deployer(
        &["hook", "-c", cfg.to_str().unwrap(), "--target-mount", &t],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out));
    write_exec(
        &root.path("curtin/finalize"),
        "#!/bin/sh\necho \"finalized $CURTIN_REPORTSTACK\" > \"$TARGET_MOUNT_POINT/finalized\"\n",
    );
    let out = deployer(
        &["hook", "-c", cfg.to_str().unwrap(), "--target-mount", &t],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(root.read("finalized"), "finalized cmd-hook\n");
    write_exec(
        &root.path("curtin/finalize"),
        "#!/bin/sh\necho finalize broke\nexit 1\n",
    );
    let out = deployer(
        &["hook", "-c", cfg.to_str().unwrap(), "--target-mount", &t],
        &[],
    );
    assert_eq!(out.status.code(), Some(6));
    assert!(text(&out).contains("finalize broke"), "{}", text(&out));
}

/// An install-like environment: a working dir made with the library, its env given to the
/// stage command (as `deployer install` runs stages).
fn stage_env(
    root: &Root,
    cfg: &str,
    fstab: &str,
) -> (deployer::workdir::WorkingDir, Vec<(String, String)>) {
    let cfg: yaml_serde::Value = yaml_serde::from_str(cfg).unwrap();
    let top = root._dir.path().join("work");
    let loaded = preseed::load::from_merged(cfg.clone()).unwrap();
    let wd = deployer::workdir::WorkingDir::create_at(&top, Some(&root.mnt), &loaded).unwrap();
    fs::write(&wd.fstab, fstab).unwrap();
    let net = cfg.get("network").cloned().unwrap_or_default();
    let mut m = yaml_serde::Mapping::new();
    m.insert("network".into(), net);
    fs::write(&wd.network_config, yaml_serde::to_string(&m).unwrap()).unwrap();
    let env = wd
        .env()
        .into_iter()
        .map(|(k, v)| (k, v.to_string_lossy().into_owned()))
        .collect();
    (wd, env)
}

const BUILTIN_CFG: &str = r#"
network:
  version: 1
  config:
  - {type: physical, name: eth0, mac_address: "AA:BB:CC:00:00:01", subnets: [{type: static, address: 10.0.0.5/24, gateway: 10.0.0.1}]}
cloudconfig:
  maas-datasource: {content: "datasource: {MAAS: {metadata_url: 'http://192.0.2.1/MAAS/metadata/'}}\n"}
storage:
  version: 1
  config:
  - {id: sda, type: disk, path: /dev/vda, ptable: gpt, grub_device: true}
"#;

fn run_builtin(root: &Root, cfg: &str) -> Output {
    let (wd, env) = stage_env(root, cfg, "LABEL=cloudimg-rootfs / ext4 defaults 0 1\n");
    fs::create_dir_all(wd.scratch.join("rules.d")).unwrap();
    fs::write(
        wd.scratch.join("rules.d/main-disk.rules"),
        "# Written by curtin\nrule\n",
    )
    .unwrap();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let c = env.iter().find(|(k, _)| *k == "CONFIG").unwrap().1;
    deployer(&["curthooks", "-c", c], &env)
}

#[test]
fn builtin_curthooks_passthrough_cloudconfig_fstab_bootloader() {
    let root = Root::new("ubuntu", Some(true), true);
    let out = run_builtin(&root, BUILTIN_CFG);
    assert!(out.status.success(), "{}", text(&out));
    // block-meta's by-dname rules (in the working dir's rules.d) are copied into the target.
    assert_eq!(
        root.read("etc/udev/rules.d/main-disk.rules"),
        "# Written by curtin\nrule\n"
    );
    // Passthrough: the network exactly as given, under `network:`.
    let pass: yaml_serde::Value =
        yaml_serde::from_str(&root.read("etc/cloud/cloud.cfg.d/50-curtin-networking.cfg")).unwrap();
    let given: yaml_serde::Value = yaml_serde::from_str(BUILTIN_CFG).unwrap();
    assert_eq!(pass["network"], given["network"]);
    assert!(!root.path("etc/netplan/50-cloud-init.yaml").exists());
    assert!(root
        .read("etc/cloud/cloud.cfg.d/95-cloudconfig-maas-datasource.cfg")
        .contains("metadata_url"));
    let fstab = root.read("etc/fstab");
    assert!(fstab.starts_with("# /etc/fstab: static file system information."));
    assert!(
        fstab.ends_with("LABEL=cloudimg-rootfs / ext4 defaults 0 1\n"),
        "{fstab}"
    );
    let tools = root.read(TOOL_LOG);
    assert_eq!(
        tools.lines().map(str::trim).collect::<Vec<_>>(),
        [
            "update-initramfs -u",
            "grub-install --target=i386-pc --recheck /dev/vda",
            "update-grub"
        ],
    );
    let grub = root.read("etc/default/grub.d/50-curtin-settings.cfg");
    assert!(grub.contains("GRUB_DISABLE_OS_PROBER=\"true\""), "{grub}");
    assert!(grub.contains("GRUB_CMDLINE_LINUX_DEFAULT="), "{grub}");
    assert_eq!(root.extra_mounts(), Vec::<String>::new());
}

/// The builtin hooks report curtin's steps, by curtin's names and descriptions and in its
/// order, to the install's webhook; `swap.size` makes the swap file curtin makes (0600,
/// mkswap'd, in etc/fstab).
#[test]
fn builtin_curthooks_report_curtins_steps_and_make_the_swap_file() {
    let root = Root::new("ubuntu", Some(true), true);
    let srv = testkit::http::Server::start();
    let cfg = format!(
        "{BUILTIN_CFG}swap: {{size: 16M}}\nreporting: {{maas: {{type: webhook, endpoint: '{}'}}}}\n",
        srv.url("/status")
    );
    let (wd, env) = stage_env(&root, &cfg, "LABEL=cloudimg-rootfs / ext4 defaults 0 1\n");
    fs::create_dir_all(wd.scratch.join("rules.d")).unwrap();
    let mut env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    env.push(("CURTIN_REPORTSTACK", "cmd-install/stage-curthooks/builtin"));
    let c = env.iter().find(|(k, _)| *k == "CONFIG").unwrap().1;
    let out = deployer(&["curthooks", "-c", c], &env);
    assert!(out.status.success(), "{}", text(&out));
    let events = srv.posted_json("/status");
    let starts: Vec<(String, String)> = events
        .iter()
        .filter(|e| e["event_type"] == "start")
        .map(|e| {
            let s = |k: &str| e[k].as_str().unwrap_or("").to_string();
            (s("name"), s("description"))
        })
        .collect();
    let top = "cmd-install/stage-curthooks/builtin/cmd-curthooks";
    let steps = [
        ("installing-kernel", "installing kernel"),
        ("setting-up-swap", "setting up swap"),
        ("apply-networking-config", "apply networking config"),
        ("writing-etc-fstab", "writing etc/fstab"),
        (
            "configuring-bootloader",
            "configuring target system bootloader",
        ),
    ];
    let mut at = vec![];
    for (name, desc) in steps {
        let full = format!("{top}/{name}");
        let i = starts
            .iter()
            .position(|(n, d)| *n == full && d == desc)
            .unwrap_or_else(|| panic!("no start of {full} ({desc}) in {starts:#?}"));
        let finished = events.iter().any(|e| {
            e["event_type"] == "finish" && e["name"] == full.as_str() && e["result"] == "SUCCESS"
        });
        assert!(finished, "{full} did not finish with SUCCESS");
        at.push(i);
    }
    assert!(
        at.windows(2).all(|w| w[0] < w[1]),
        "curtin's order: {starts:#?}"
    );
    // The swap file: 16 MiB, root's only, with the swap signature, and in etc/fstab.
    let md = fs::metadata(root.path("swap.img")).unwrap();
    assert_eq!(md.len(), 16 << 20);
    assert_eq!(md.permissions().mode() & 0o777, 0o600);
    let head = fs::read(root.path("swap.img")).unwrap();
    let page = 4096;
    assert_eq!(&head[page - 10..page], b"SWAPSPACE2");
    let fstab = root.read("etc/fstab");
    assert!(
        fstab.contains("/swap.img\tnone\tswap\tsw\t0\t0\n"),
        "{fstab}"
    );
}

/// `swap: {size: 0}` (what MAAS sends to turn it off) and a falsy `swap:` make no swap file.
#[test]
fn no_swap_file_when_the_config_turns_it_off() {
    for swap in ["swap: {size: 0B}\n", "swap: null\n"] {
        let root = Root::new("ubuntu", Some(true), true);
        let out = run_builtin(&root, &format!("{BUILTIN_CFG}{swap}"));
        assert!(out.status.success(), "{}", text(&out));
        assert!(!root.path("swap.img").exists(), "{swap}");
        assert!(!root.read("etc/fstab").contains("swap"), "{swap}");
    }
}

#[test]
fn builtin_curthooks_render_netplan_or_eni_without_passthrough() {
    // cloud-init without NETWORK_CONFIG_V2, netplan present: netplan rendered here.
    let root = Root::new("ubuntu", Some(false), true);
    let out = run_builtin(&root, BUILTIN_CFG);
    assert!(out.status.success(), "{}", text(&out));
    let np: yaml_serde::Value =
        yaml_serde::from_str(&root.read("etc/netplan/50-cloud-init.yaml")).unwrap();
    assert_eq!(
        np["network"]["ethernets"]["eth0"]["match"]["macaddress"],
        "aa:bb:cc:00:00:01"
    );
    assert_eq!(
        np["network"]["ethernets"]["eth0"]["addresses"][0],
        "10.0.0.5/24"
    );
    assert_eq!(
        root.read("etc/cloud/cloud.cfg.d/curtin-disable-cloudinit-networking.cfg"),
        "network: {config: disabled}\n"
    );
    let mode = fs::metadata(root.path("etc/netplan/50-cloud-init.yaml"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert!(!root
        .path("etc/cloud/cloud.cfg.d/50-curtin-networking.cfg")
        .exists());

    // Debian without netplan: ENI and udev naming rules.
    let root = Root::new("debian", Some(false), false);
    let out = run_builtin(&root, BUILTIN_CFG);
    assert!(out.status.success(), "{}", text(&out));
    let eni = root.read("etc/network/interfaces");
    assert!(
        eni.contains("iface eth0 inet static") && eni.contains("address 10.0.0.5/24"),
        "{eni}"
    );
    assert!(root
        .read("etc/udev/rules.d/70-persistent-net.rules")
        .contains("ATTR{address}==\"aa:bb:cc:00:00:01\", NAME=\"eth0\""));
    assert!(root
        .path("etc/cloud/cloud.cfg.d/curtin-disable-cloudinit-networking.cfg")
        .exists());
}

#[test]
fn builtin_curthooks_missing_tool_names_the_package() {
    let root = Root::new("ubuntu", Some(true), true);
    fs::remove_file(root.path("usr/sbin/update-grub")).unwrap();
    let out = run_builtin(&root, BUILTIN_CFG);
    assert!(!out.status.success());
    let t = text(&out);
    assert!(
        t.contains("update-grub") && t.contains("grub2-common"),
        "{t}"
    );
    // A curthooks failure (6), not 7 ("the image lacks cloud-init").
    fs::remove_file(root.path("usr/sbin/update-initramfs")).unwrap();
    let out = run_builtin(&root, BUILTIN_CFG);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(6), "{t}");
    assert!(
        t.contains(
            "update-initramfs is not in the target image: install the initramfs-tools package"
        ),
        "{t}"
    );
    assert_eq!(
        root.extra_mounts(),
        Vec::<String>::new(),
        "torn down on failure"
    );
    // A target of neither family without a hook: told to ship one.
    let root = Root::new("arch", Some(true), false);
    let out = run_builtin(&root, BUILTIN_CFG);
    assert!(!out.status.success());
    assert!(text(&out).contains("curtin-hooks"), "{}", text(&out));
    // A RHEL-family one missing grub2-mkconfig: the package named.
    let root = Root::new("rocky", Some(true), false);
    write_exec(&root.path("usr/sbin/grub2-install"), &stub("grub2-install"));
    let out = run_builtin(&root, BUILTIN_CFG);
    assert_eq!(out.status.code(), Some(6), "{}", text(&out));
    assert!(
        text(&out)
            .contains("grub2-mkconfig is not in the target image: install the grub2-tools package"),
        "{}",
        text(&out)
    );
}

#[test]
fn builtin_curthooks_on_the_rhel_family() {
    // packer-maas's rocky/rhel/centos images have no hook: curtin's redhat builtin hooks.
    let root = Root::new("rocky", Some(true), false);
    for t in ["grub2-install", "grub2-mkconfig", "dracut"] {
        write_exec(&root.path(&format!("usr/sbin/{t}")), &stub(t));
    }
    fs::create_dir_all(root.path("boot")).unwrap();
    for f in [
        "vmlinuz-5.14.0-427.el9.x86_64",
        "vmlinuz-0-rescue-0123456789abcdef",
    ] {
        fs::write(root.path(&format!("boot/{f}")), "").unwrap();
    }
    fs::create_dir_all(root.path("etc/default")).unwrap();
    fs::write(
        root.path("etc/default/grub"),
        "GRUB_TIMEOUT=5\nGRUB_CMDLINE_LINUX_DEFAULT=\"quiet\"\nGRUB_ENABLE_BLSCFG=true\n",
    )
    .unwrap();
    let cfg = format!(
        "{BUILTIN_CFG}  - {{id: p1, type: partition, device: sda, size: 1G}}\n  - {{id: vg0, type: lvm_volgroup, name: vg0, devices: [p1]}}\n"
    );
    let out = run_builtin(&root, &cfg);
    assert!(out.status.success(), "{}", text(&out));
    let tools = root.read(TOOL_LOG);
    assert_eq!(
        tools.lines().map(str::trim).collect::<Vec<_>>(),
        [
            "dracut -f /boot/initramfs-5.14.0-427.el9.x86_64.img 5.14.0-427.el9.x86_64",
            "grub2-install /dev/vda",
            "grub2-mkconfig -o /boot/grub2/grub.cfg",
        ],
    );
    assert_eq!(
        root.read("etc/dracut.conf.d/50-curtin-storage.conf"),
        "# Written by curtin for custom storage config\nadd_dracutmodules+=\" lvm\"\nlvmconf=\"yes\"\n"
    );
    let grub = root.read("etc/default/grub");
    assert!(grub.starts_with("GRUB_TIMEOUT=5\n"), "{grub}");
    assert!(grub.contains("GRUB_ENABLE_BLSCFG=true"), "{grub}");
    assert!(grub.contains("rd.auto=1\""), "{grub}");
    assert_eq!(
        grub.matches("GRUB_CMDLINE_LINUX_DEFAULT=").count(),
        1,
        "{grub}"
    );
    assert!(grub.contains("GRUB_DISABLE_OS_PROBER=\"true\""), "{grub}");
    assert!(root.path(".autorelabel").is_file());
    // The network goes to cloud-init (which renders sysconfig), never netplan or ENI.
    let pass: yaml_serde::Value =
        yaml_serde::from_str(&root.read("etc/cloud/cloud.cfg.d/50-curtin-networking.cfg")).unwrap();
    let given: yaml_serde::Value = yaml_serde::from_str(BUILTIN_CFG).unwrap();
    assert_eq!(pass["network"], given["network"]);
    assert!(!root.path("etc/network/interfaces").exists());
    assert!(root
        .read("etc/cloud/cloud.cfg.d/95-cloudconfig-maas-datasource.cfg")
        .contains("metadata_url"));
    assert!(root
        .read("etc/fstab")
        .ends_with("LABEL=cloudimg-rootfs / ext4 defaults 0 1\n"));
    assert_eq!(root.extra_mounts(), Vec::<String>::new());
}

#[test]
fn net_meta_writes_the_config_as_given_or_runs_the_image_hook() {
    let root = Root::new("ubuntu", Some(true), true);
    let cfg = "network:\n  version: 2\n  ethernets:\n    eth0: {dhcp4: true, x-kept: 1}\n";
    let (wd, env) = stage_env(&root, cfg, "");
    fs::write(&wd.network_config, "").unwrap();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let c = wd.config.to_str().unwrap();
    let out = deployer(&["net-meta", "custom", "-c", c], &env);
    assert!(out.status.success(), "{}", text(&out));
    let got: yaml_serde::Value =
        yaml_serde::from_str(&fs::read_to_string(&wd.network_config).unwrap()).unwrap();
    let want: yaml_serde::Value = yaml_serde::from_str(cfg).unwrap();
    assert_eq!(got, want);
    // `disabled` writes nothing.
    fs::write(&wd.network_config, "").unwrap();
    let out = deployer(&["net-meta", "disabled", "-c", c], &env);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(fs::read_to_string(&wd.network_config).unwrap(), "");
    // The image's /curtin/network-config replaces the stage.
    write_exec(
        &root.path("curtin/network-config"),
        "#!/bin/sh\necho 'network: {version: 1, config: []}' > \"$OUTPUT_NETWORK_CONFIG\"\n",
    );
    let out = deployer(&["net-meta", "custom", "-c", c], &env);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        fs::read_to_string(&wd.network_config).unwrap(),
        "network: {version: 1, config: []}\n"
    );
}

#[test]
fn ubuntu_core_gets_cloudconfig_and_network_only() {
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path().join("target");
    fs::create_dir_all(t.join("system-data/var/lib/snapd")).unwrap();
    // A hook is ignored on Ubuntu Core, as in curtin.
    write_exec(&t.join("curtin/curtin-hooks"), "#!/bin/sh\nexit 1\n");
    let cfg = dir.path().join("cfg.yaml");
    fs::write(
        &cfg,
        // curtin ignores a cloudconfig entry's `path` (and `validate` says so).
        "network: {version: 2, ethernets: {eth0: {dhcp4: true}}}\ncloudconfig: {ds: {content: 'x: 1', path: /etc/elsewhere.cfg}}\n",
    )
    .unwrap();
    let out = deployer(
        &[
            "curthooks",
            "-c",
            cfg.to_str().unwrap(),
            "--target-mount",
            t.to_str().unwrap(),
        ],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out));
    let d = t.join("system-data/etc/cloud/cloud.cfg.d");
    assert_eq!(
        fs::read_to_string(d.join("95-cloudconfig-ds.cfg")).unwrap(),
        "x: 1"
    );
    assert!(!t.join("system-data/etc/elsewhere.cfg").exists());
    let v = deployer(&["validate", "-c", cfg.to_str().unwrap()], &[]);
    assert!(
        text(&v).contains("cloudconfig.ds.path: ignored, as curtin ignores it"),
        "{}",
        text(&v)
    );
    let net: yaml_serde::Value =
        yaml_serde::from_str(&fs::read_to_string(d.join("50-curtin-networking.cfg")).unwrap())
            .unwrap();
    assert_eq!(net["network"]["ethernets"]["eth0"]["dhcp4"], true);
}

/// Issue #16 item 4: the image links `etc/cloud/cloud.cfg.d` (MAAS's OAuth secrets go there),
/// `etc/netplan`, `etc/default`, `etc/fstab` and `run` to host places, absolute or climbing
/// with `../../..`. The builtin curthooks follow them as the target would: inside it. The host
/// places keep what they had; nothing stays mounted.
#[test]
fn builtin_curthooks_follow_the_images_links_inside_the_target() {
    let root = Root::new("ubuntu", Some(false), true);
    let host = tempfile::tempdir_in(testkit::loopdev::scratch_root()).unwrap();
    let dirs = ["cloud", "netplan", "default", "run"];
    for d in dirs {
        fs::create_dir_all(host.path().join(d)).unwrap();
        fs::write(host.path().join(d).join("canary"), "host\n").unwrap();
        // The same path inside the target, where the links lead when resolved there.
        fs::create_dir_all(
            root.path(
                host.path()
                    .join(d)
                    .strip_prefix("/")
                    .unwrap()
                    .to_str()
                    .unwrap(),
            ),
        )
        .unwrap();
    }
    fs::write(host.path().join("fstab"), "host fstab\n").unwrap();
    let climb = |from: &str, to: &Path| {
        let depth = root.path(from).components().count() - 1;
        let mut p = PathBuf::new();
        for _ in 0..depth {
            p.push("..");
        }
        p.join(to.strip_prefix("/").unwrap())
    };
    let h = |d: &str| host.path().join(d);
    fs::create_dir_all(root.path("etc/cloud")).unwrap();
    std::os::unix::fs::symlink(h("cloud"), root.path("etc/cloud/cloud.cfg.d")).unwrap();
    std::os::unix::fs::symlink(climb("etc", &h("netplan")), root.path("etc/netplan")).unwrap();
    std::os::unix::fs::symlink(h("default"), root.path("etc/default")).unwrap();
    std::os::unix::fs::symlink(climb("etc", &h("fstab")), root.path("etc/fstab")).unwrap();
    fs::remove_dir(root.path("run")).unwrap();
    std::os::unix::fs::symlink(h("run"), root.path("run")).unwrap();

    let out = run_builtin(&root, BUILTIN_CFG);
    assert!(out.status.success(), "{}", text(&out));
    for d in dirs {
        let names: Vec<_> = fs::read_dir(h(d))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["canary"], "host {d} changed");
        assert_eq!(fs::read_to_string(h(d).join("canary")).unwrap(), "host\n");
    }
    assert_eq!(fs::read_to_string(h("fstab")).unwrap(), "host fstab\n");
    let inside = |d: &str| root.path(h(d).strip_prefix("/").unwrap().to_str().unwrap());
    let secret = inside("cloud").join("95-cloudconfig-maas-datasource.cfg");
    assert!(fs::read_to_string(&secret)
        .unwrap()
        .contains("metadata_url"));
    assert_eq!(
        fs::metadata(&secret).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(inside("netplan").join("50-cloud-init.yaml").is_file());
    assert!(inside("default")
        .join("grub.d/50-curtin-settings.cfg")
        .is_file());
    assert!(fs::read_to_string(inside("fstab"))
        .unwrap()
        .contains("LABEL=cloudimg-rootfs"));
    assert_eq!(root.extra_mounts(), Vec::<String>::new());
}

#[test]
fn linked_hooks_keep_their_name_and_the_image_check_follows_the_hook() {
    // centos6's shape: `curtin-hooks` and `finalize` link to one wrapper that runs "$0.py";
    // and the image has no cloud-init until its hook installs it (xenserver8's shape).
    let root = Root::new("centos", None, false);
    let t = root.mnt.to_string_lossy().into_owned();
    write_exec(
        &root.path("curtin/python_wrapper"),
        "#!/bin/sh\nset -e\nbase=$(basename \"$0\")\necho \"$base\" >> \"$TARGET_MOUNT_POINT/ran\"\n\
         test -f \"$0.py\"\n\
         if [ \"$base\" = curtin-hooks ]; then\n\
         printf '#!/bin/sh\\necho 24.1\\n' > \"$TARGET_MOUNT_POINT/usr/bin/cloud-init\"\n\
         chmod 755 \"$TARGET_MOUNT_POINT/usr/bin/cloud-init\"\nfi\n",
    );
    for name in ["curtin-hooks", "finalize"] {
        std::os::unix::fs::symlink("python_wrapper", root.path(&format!("curtin/{name}"))).unwrap();
        fs::write(root.path(&format!("curtin/{name}.py")), "").unwrap();
    }
    let cfg = root._dir.path().join("cfg.yaml");
    fs::write(&cfg, "{}\n").unwrap();
    for stage in ["curthooks", "hook"] {
        let out = deployer(
            &[stage, "-c", cfg.to_str().unwrap(), "--target-mount", &t],
            &[],
        );
        assert!(out.status.success(), "{stage}: {}", text(&out));
    }
    assert_eq!(root.read("ran"), "curtin-hooks\nfinalize\n");
    // A hook that leaves no cloud-init behind: MAAS's message, after the hook ran.
    fs::remove_file(root.path("usr/bin/cloud-init")).unwrap();
    fs::remove_file(root.path("curtin/curtin-hooks")).unwrap();
    write_exec(
        &root.path("curtin/curtin-hooks"),
        "#!/bin/sh\ntouch \"$TARGET_MOUNT_POINT/hook-ran\"\n",
    );
    let out = deployer(
        &[
            "curthooks",
            "-c",
            cfg.to_str().unwrap(),
            "--target-mount",
            &t,
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(7), "{}", text(&out));
    assert!(
        text(&out).contains("cloud-init not detected"),
        "{}",
        text(&out)
    );
    assert!(root.path("hook-ran").exists());
}
