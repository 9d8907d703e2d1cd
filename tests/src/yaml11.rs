//! Reading what deployer and preseed write the way curtin and cloud-init read it: PyYAML
//! (YAML 1.1), through `python3 -c` (scripts/setup installs python3-yaml).

use std::io::Write;
use std::process::{Command, Stdio};

/// `text` as PyYAML's `safe_load` reads it, in JSON (a date as its text).
pub fn pyyaml(text: &str) -> serde_json::Value {
    let mut child = Command::new("python3")
        .args([
            "-c",
            "import sys, json, yaml; print(json.dumps(yaml.safe_load(sys.stdin), default=str))",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 with PyYAML (scripts/setup installs python3-yaml)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "PyYAML could not read:\n{text}");
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A YAML 1.1 reader (PyYAML) gets the same document as a YAML 1.2 one (yaml_serde).
pub fn assert_same(text: &str) {
    let v12: serde_json::Value = yaml_serde::from_str(text).expect("YAML 1.2");
    assert_eq!(
        pyyaml(text),
        v12,
        "YAML 1.1 reads this differently:\n{text}"
    );
}
