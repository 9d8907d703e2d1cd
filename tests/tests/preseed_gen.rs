//! The `preseed` binary on every golden case (preseed/tests/golden): what it prints is what the
//! golden files say, loads through the config model, and (once `deployer validate`/`plan` exist)
//! passes them. Run `cargo build --workspace --bins` first (scripts/test does).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use yaml_serde::Value;

fn preseed_bin() -> PathBuf {
    let p = testkit::target_dir().join("preseed");
    assert!(
        p.exists(),
        "{} is missing: run `cargo build -p preseed --bin preseed` first",
        p.display()
    );
    p
}

fn golden_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../preseed/tests/golden")
}

fn cases() -> Vec<PathBuf> {
    let mut dirs: Vec<_> = std::fs::read_dir(golden_root())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    assert!(!dirs.is_empty());
    dirs
}

fn run(args: &[&str], dir: &Path) -> Output {
    let mut cmd = Command::new(preseed_bin());
    cmd.args(args);
    for (flag, file) in [("--machine", "machine.yaml"), ("--image", "image.yaml")] {
        if args[0] != "check-resource" || flag == "--image" {
            cmd.arg(flag).arg(dir.join(file));
        }
    }
    cmd.output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Every case: `generate` (archive and merged) and `user-data` succeed and match the goldens,
/// or fail with exit 2 and the golden error.
#[test]
fn generate_every_case() {
    for dir in cases() {
        let name = dir.file_name().unwrap().to_string_lossy().to_string();
        let merged = run(&["generate", "--merged"], &dir);
        let archive = run(&["generate"], &dir);
        if name.starts_with("err-") {
            for out in [&merged, &archive] {
                assert_eq!(out.status.code(), Some(2), "{name}");
                assert!(out.stdout.is_empty(), "{name}: nothing on stdout on error");
                let expected = std::fs::read_to_string(dir.join("expected-error.txt")).unwrap();
                let err = text(&out.stderr);
                // The binary names the file by the path it was given.
                let want = expected.trim().split_once(": ").unwrap().1;
                assert!(err.contains(want), "{name}: {err:?} lacks {want:?}");
            }
            continue;
        }
        assert!(merged.status.success(), "{name}: {}", text(&merged.stderr));
        assert!(
            archive.status.success(),
            "{name}: {}",
            text(&archive.stderr)
        );
        let expected = std::fs::read_to_string(dir.join("expected.yaml")).unwrap();
        assert_eq!(
            text(&merged.stdout),
            expected,
            "{name}: --merged differs from golden"
        );
        // curtin reads it with PyYAML: a MAC must stay a string, not turn into a base-60 int.
        testkit::yaml11::assert_same(&expected);
        let a = preseed::load::load_documents(vec![(name.clone(), text(&archive.stdout))])
            .unwrap_or_else(|e| panic!("{name}: archive does not load: {e}"));
        let m = preseed::load::load_documents(vec![(name.clone(), text(&merged.stdout))])
            .unwrap_or_else(|e| panic!("{name}: merged does not load: {e}"));
        assert_eq!(a.merged, m.merged, "{name}: archive and merged differ");

        let ud = run(&["user-data"], &dir);
        assert!(ud.status.success(), "{name}: {}", text(&ud.stderr));
        let ud = text(&ud.stdout);
        assert!(ud.starts_with("#cloud-config\n"));
        let v: Value = yaml_serde::from_str(&ud).unwrap();
        assert_eq!(v["power_state"]["mode"], Value::from("reboot"));
        assert_eq!(
            v["power_state"]["condition"],
            Value::from("test ! -e /tmp/block-reboot")
        );
        // The embedded config is the archive `generate` prints.
        assert_eq!(
            v["write_files"][0]["content"].as_str().unwrap(),
            text(&archive.stdout),
            "{name}"
        );
    }
}

#[test]
fn user_data_fetches_config_with_oauth() {
    let dir = golden_root().join("flat-uefi");
    let out = run(
        &[
            "user-data",
            "--config-url",
            "http://10.0.0.2:5248/MAAS/metadata/curtin/latest/deployer-config",
            "--deployer-url",
            "http://10.0.0.2:5248/deployer",
        ],
        &dir,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: Value = yaml_serde::from_str(&text(&out.stdout)).unwrap();
    let files = v["write_files"].as_sequence().unwrap();
    assert_eq!(files.len(), 1, "config not embedded when fetched");
    let script = files[0]["content"].as_str().unwrap();
    assert!(script.contains("oauth_signature_method=\\\"PLAINTEXT\\\""));
    assert!(script.contains("oauth_consumer_key=\\\"ck\\\""));
    assert!(script.contains("oauth_signature=\\\"%26ts\\\""));
    assert!(script.contains("'http://10.0.0.2:5248/MAAS/metadata/curtin/latest/deployer-config'"));
    assert!(script.contains("ln -sf deployer /usr/local/sbin/curtin"));
    assert!(script.ends_with("exec deployer install -c /run/deployer/config.yaml\n"));
    // The script is valid sh.
    let check = Command::new("sh")
        .arg("-n")
        .arg("-c")
        .arg(script)
        .status()
        .unwrap();
    assert!(check.success());
}

#[test]
fn check_resource() {
    let ok = run(&["check-resource"], &golden_root().join("flat-uefi"));
    assert!(ok.status.success(), "{}", text(&ok.stderr));
    assert_eq!(
        text(&ok.stdout),
        "ok: custom/jammy-custom (custom/jammy-custom, base image ubuntu/jammy), source type dd-gz\n"
    );
    let ok = run(&["check-resource"], &golden_root().join("centos-synced"));
    assert!(text(&ok.stdout).contains("(centos/8), source type tgz"));
    for (case, msg) in [
        (
            "err-missing-base-image",
            "base_image: custom images require a valid base image name",
        ),
        (
            "err-invalid-base-image",
            "base_image: a base image must follow the format: <osystem>/<series>",
        ),
        (
            "err-base-image-os",
            "custom images require a valid non-custom OS type base image: windows is invalid",
        ),
        (
            "err-unknown-filetype",
            "filetype: unknown filetype \"ddlz4\"",
        ),
        ("err-ubuntu-name", "you have to specify 'custom' as the OS"),
    ] {
        let out = run(&["check-resource"], &golden_root().join(case));
        assert_eq!(out.status.code(), Some(2), "{case}");
        assert!(
            text(&out.stderr).contains(msg),
            "{case}: {}",
            text(&out.stderr)
        );
    }
    let missing = Command::new(preseed_bin())
        .args(["check-resource", "--image", "/nonexistent/image.yaml"])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(2));
    assert!(text(&missing.stderr).contains("reading /nonexistent/image.yaml"));
}

/// `--out-dir` writes MAAS's numbered parts; given to `deployer -c` in order they merge to the
/// same config as `--merged`.
#[test]
fn numbered_parts_merge_like_merged() {
    let tmp = tempfile::tempdir().unwrap();
    for dir in cases() {
        let name = dir.file_name().unwrap().to_string_lossy().to_string();
        if name.starts_with("err-") {
            continue;
        }
        let out_dir = tmp.path().join(&name);
        let out = run(&["generate", "--out-dir", out_dir.to_str().unwrap()], &dir);
        assert!(out.status.success(), "{name}: {}", text(&out.stderr));
        let paths: Vec<String> = text(&out.stdout).lines().map(String::from).collect();
        assert!(paths[0].ends_with("/config-000.cfg"), "{name}");
        let merged_file = tmp.path().join(format!("{name}-merged.yaml"));
        std::fs::write(&merged_file, run(&["generate", "--merged"], &dir).stdout).unwrap();
        let print = |files: &[String]| {
            let mut cmd = testkit::deployer();
            cmd.arg("validate").arg("--print");
            for f in files {
                cmd.arg("-c").arg(f);
            }
            let o = cmd.output().unwrap();
            assert!(o.status.success(), "{name}: {}", text(&o.stderr));
            text(&o.stdout)
        };
        assert_eq!(
            print(&paths),
            print(&[merged_file.display().to_string()]),
            "{name}"
        );
    }
}

/// Everything generated passes `deployer validate` and `deployer plan`.
#[test]
fn deployer_validates_and_plans_every_case() {
    let tmp = tempfile::tempdir().unwrap();
    for dir in cases() {
        let name = dir.file_name().unwrap().to_string_lossy().to_string();
        if name.starts_with("err-") {
            continue;
        }
        for form in ["archive", "merged"] {
            let args: &[&str] = if form == "merged" {
                &["generate", "--merged"]
            } else {
                &["generate"]
            };
            let out = run(args, &dir);
            assert!(out.status.success());
            let cfg = tmp.path().join(format!("{name}-{form}.yaml"));
            std::fs::write(&cfg, &out.stdout).unwrap();
            let v = testkit::deployer()
                .arg("validate")
                .arg("-c")
                .arg(&cfg)
                .output()
                .unwrap();
            assert!(
                v.status.success(),
                "{name} {form}: validate: {}",
                text(&v.stderr)
            );
            // A dry run: names the disks by serial or path, touches nothing.
            let p = testkit::deployer()
                .arg("plan")
                .arg("-c")
                .arg(&cfg)
                .output()
                .unwrap();
            assert!(
                p.status.success(),
                "{name} {form}: plan: {}",
                text(&p.stderr)
            );
            let plan = text(&p.stdout);
            assert!(plan.contains("stage partitioning"), "{name}: {plan}");
            assert!(
                plan.contains("report events to maas: Webhook http://10.0.0.2:5248/MAAS/metadata/status/4y3h7n"),
                "{name}: {plan}"
            );
            // Custom images carry MAAS's checks into the late stage (not synced CentOS, not
            // ESXi's VMFS cases).
            if !["centos-synced", "vmfs6", "vmfs7"].contains(&name.as_str()) {
                assert!(
                    plan.contains("run 98-validate-custom-image-has-cloud-init"),
                    "{name}: {plan}"
                );
            }
        }
    }
}

/// deployer's config reader gives the value PyYAML's `safe_load` gives (curtin's reader), on
/// the YAML 1.1 points where YAML 1.2 readers differ, and on every example config.
#[test]
fn configs_read_as_pyyaml_reads_them() {
    let docs = [
        "a: [yes, no, on, off, Yes, NO, y, n, yEs, true, False]\n",
        "n: [0644, 0x1f, 0b11, 1_000, '1_000', 1:30, 190:20:30, 09, 1e3, 1.5e+3, .5, 1.]\n",
        "z: [~, null, Null, NULL, nUll, '']\nempty:\n",
        "base: &b {x: 1, y: 2}\nother: &o {y: 20, w: 4}\nm1: {<<: *b, x: 10}\nm2: {<<: [*o, *b], q: 1}\n",
        "dup: {a: 1, b: 2, a: 3}\nlist: &l [1, 2]\nagain: *l\n",
        "t: [!!str 12, !!int '7', !!float '2', !!bool 'on', !!null '']\nq: 'it''s'\nd: \"tab\\there\"\n",
        "blk: |\n  line one\n  line two\nfold: >-\n  folded\n  text\nkeep: |+\n  kept\n\n",
        "{\"json\": [1, 2.5, \"x\", true, null], \"e\": 1.5e3}\n",
        "%YAML 1.1\n---\nmac: 52:54:00:12:34:56\nwhen: 2024-01-02\nver: 1.2.3\n",
    ];
    let mut texts: Vec<String> = docs.iter().map(|s| s.to_string()).collect();
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    for e in std::fs::read_dir(examples).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "yaml") {
            texts.push(std::fs::read_to_string(p).unwrap());
        }
    }
    for text in texts {
        let ours: serde_json::Value =
            serde_json::to_value(preseed::yaml::from_str(&text).unwrap()).unwrap();
        assert_eq!(ours, testkit::yaml11::pyyaml(&text), "{text}");
    }
}
