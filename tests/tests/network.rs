//! Network rendering through the CLI (`deployer render-network`) against golden files:
//! `tests/golden/network/<case>.yaml` (v1 input), `<case>.netplan.yaml` (what cloud-init's
//! netplan renderer produces for it, written by hand from netrender.md and compared as parsed
//! YAML, as cloud-init's own tests do) and `<case>.eni` (compared line by line).

use std::path::PathBuf;

use yaml_serde::Value;

fn golden(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("golden/network")
        .join(name)
}

fn render(input: &std::path::Path, format: &str) -> std::process::Output {
    testkit::deployer()
        .args(["render-network", "-c"])
        .arg(input)
        .args(["--format", format])
        .output()
        .expect("run deployer")
}

fn render_ok(input: &std::path::Path, format: &str) -> String {
    let out = render(input, format);
    assert!(
        out.status.success(),
        "render-network {format} {}: {}",
        input.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `text` as a config file `c.yaml` in a fresh directory (kept while the guard lives).
fn config_file(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.yaml");
    std::fs::write(&cfg, text).unwrap();
    (dir, cfg)
}

fn check_case(case: &str) {
    let input = golden(&format!("{case}.yaml"));
    let netplan = render_ok(&input, "netplan");
    testkit::yaml11::assert_same(&netplan);
    let got: Value = yaml_serde::from_str(&netplan).unwrap();
    let want: Value = yaml_serde::from_str(
        &std::fs::read_to_string(golden(&format!("{case}.netplan.yaml"))).unwrap(),
    )
    .unwrap();
    assert_eq!(
        got,
        want,
        "netplan for {case}:\n got: {}\nwant: {}",
        yaml_serde::to_string(&got).unwrap(),
        yaml_serde::to_string(&want).unwrap()
    );
    let got = render_ok(&input, "eni");
    let want = std::fs::read_to_string(golden(&format!("{case}.eni"))).unwrap();
    let strip = |s: &str| -> Vec<String> {
        s.lines()
            .filter(|l| !l.starts_with("# Written"))
            .map(str::to_string)
            .collect()
    };
    assert_eq!(strip(&got), strip(&want), "ENI for {case}:\n{got}");
}

#[test]
fn golden_physical() {
    check_case("physical");
}

#[test]
fn golden_static() {
    check_case("static");
}

#[test]
fn golden_dhcp() {
    check_case("dhcp");
}

#[test]
fn golden_bond() {
    check_case("bond");
}

#[test]
fn golden_vlan() {
    check_case("vlan");
}

#[test]
fn golden_bridge() {
    check_case("bridge");
}

#[test]
fn golden_routes() {
    check_case("routes");
}

#[test]
fn golden_dns() {
    check_case("dns");
}

#[test]
fn golden_aliases() {
    check_case("aliases");
}

#[test]
fn passthrough_is_the_config_as_given() {
    let net =
        "network:\n  version: 2\n  ethernets:\n    eth0: {dhcp4: true, mtu: 0, x-unknown: kept}\n";
    let (_dir, cfg) = config_file(&format!("sources: {{a: 'http://x/y.tgz'}}\n{net}"));
    let got: Value = yaml_serde::from_str(&render_ok(&cfg, "passthrough")).unwrap();
    let want: Value = yaml_serde::from_str(net).unwrap();
    assert_eq!(got, want);
    // v2 as netplan is the same document; as ENI it is refused with a reason.
    let got: Value = yaml_serde::from_str(&render_ok(&cfg, "netplan")).unwrap();
    assert_eq!(got, want);
    let out = render(&cfg, "eni");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("version 2"));
}

/// A MAC of digits only is a base-60 integer to YAML 1.1 (cloud-init then waits for a NIC with
/// MAC 41135085296 and applies no network): what deployer writes keeps it a string.
#[test]
fn digit_only_mac_stays_a_string_for_yaml11_readers() {
    let (_dir, cfg) = config_file(
        "network: {version: 1, config: [{type: physical, name: eth0, \
         mac_address: '52:54:00:12:34:56', subnets: [{type: static, address: 10.0.2.50/24}]}]}\n",
    );
    for format in ["passthrough", "netplan"] {
        let text = render_ok(&cfg, format);
        assert!(text.contains("'52:54:00:12:34:56'"), "{format}:\n{text}");
        testkit::yaml11::assert_same(&text);
    }
}

#[test]
fn bad_network_is_named() {
    let (_dir, cfg) = config_file(
        "network: {version: 1, config: [{type: physical, name: eth0, subnets: [{type: static, address: 10.0.0.300/24}]}]}\n",
    );
    let out = render(&cfg, "netplan");
    assert_eq!(out.status.code(), Some(2), "config error exit code");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("config[0]") && err.contains("10.0.0.300"),
        "{err}"
    );
}
