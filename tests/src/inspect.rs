//! Running `deployer inspect` and reading its report lines, for the inspect tests here and in
//! qemu-tests.

use std::process::Command;

use crate::deployer_bin;

/// One run: exit code and output.
pub struct Inspected {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// `deployer inspect ARGS...` with extra environment.
pub fn inspect(args: &[&str], env: &[(&str, &str)]) -> Inspected {
    let mut cmd = Command::new(deployer_bin());
    cmd.arg("inspect").args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run deployer inspect");
    Inspected {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

impl Inspected {
    /// The line of a check: `<verdict>  <check>  <reason>` (check names hold no double space).
    pub fn line(&self, check: &str) -> &str {
        self.stdout
            .lines()
            .find(|l| l.get(9..).and_then(|rest| rest.split("  ").next()) == Some(check))
            .unwrap_or_else(|| panic!("no {check} line in:\n{}\n{}", self.stdout, self.stderr))
    }
}
