//! The verdicts and how they are printed: one line a check (verdict, check name, reason), or
//! one JSON document (schema `deployer-inspect/1`, described in the README).

use serde::Serialize;

/// How bad a finding is. Ordered: the worst finding is the image's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Ok,
    Warning,
    Error,
}

impl Verdict {
    pub fn word(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::Warning => "warning",
            Verdict::Error => "error",
        }
    }

    /// 0 when MAAS would deploy it, 1 when only warnings, 2 when an error would stop it.
    pub fn exit_code(self) -> i32 {
        match self {
            Verdict::Ok => 0,
            Verdict::Warning => 1,
            Verdict::Error => 2,
        }
    }
}

/// One finding.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// A stable name: `format`, `filetype`, `partition-table`, `partition 2`, `root`, ...
    pub check: String,
    pub verdict: Verdict,
    /// One line.
    pub reason: String,
}

/// Everything inspect found: the checks in the order they were made, the facts behind them,
/// and the deployment plan.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub schema: &'static str,
    pub image: String,
    pub verdict: Option<Verdict>,
    pub exit_code: i32,
    pub checks: Vec<Check>,
    pub facts: Facts,
    /// What a deployment would do, as `deployer plan` says it.
    pub plan: Vec<String>,
}

/// What the image is, for programs (every field optional: a tarball has no partitions).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Facts {
    /// `gzip`, `xz`, `bzip2`, `zstd` or `none`.
    pub compression: Option<String>,
    /// `disk`, `disk-in-tar` or `root-tarball`.
    pub layout: Option<String>,
    /// The MAAS upload filetype that describes the bytes (`ddgz`, `tgz`, ...).
    pub filetype: Option<String>,
    /// curtin's source type for it (`dd-gz`, `tgz`, ...).
    pub source_type: Option<String>,
    pub partition_table: Option<String>,
    pub partitions: Vec<Partition>,
    pub root: Option<Root>,
    pub firmware: Vec<String>,
    pub os: Option<Os>,
    pub cloud_init: Option<CloudInit>,
    pub netplan: Option<bool>,
    pub kernels: Vec<String>,
    pub initramfs: Vec<String>,
    pub hooks: Vec<Hook>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Partition {
    pub number: u32,
    pub start: u64,
    pub size: u64,
    /// The table's type (GPT type GUID or msdos type byte), and what it means.
    pub entry_type: Option<String>,
    pub type_name: Option<String>,
    pub name: Option<String>,
    pub fstype: Option<String>,
    pub label: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Root {
    pub partition: Option<u32>,
    /// Root by curtin's rule (the last partition with `/curtin`, ...), when one has a marker.
    pub curtin_rule: Option<u32>,
    /// Root by deployer's fallback (the last partition with `/etc/os-release`).
    pub fallback: Option<u32>,
    pub marker: Option<String>,
    pub last: Option<bool>,
    pub grows: Option<bool>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Os {
    pub id: Option<String>,
    pub id_like: Vec<String>,
    pub version_id: Option<String>,
    pub codename: Option<String>,
    pub pretty_name: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct CloudInit {
    pub version: Option<String>,
    pub network_config_v2: Option<bool>,
    /// The datasource_list the image ends up with (none: cloud-init's default, which has MAAS).
    pub datasource_list: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Hook {
    /// `curtin-hooks`, `finalize` or `network-config`.
    pub name: String,
    pub executable: bool,
    pub link: Option<String>,
    /// `shell`, `python` or the interpreter of the `#!` line.
    pub language: Option<String>,
    pub interpreter: Option<String>,
    pub curtin_imports: Vec<Import>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Import {
    pub module: String,
    pub symbol: Option<String>,
    pub line: usize,
    pub provided: bool,
}

impl Report {
    pub fn new(image: &str) -> Report {
        Report {
            schema: "deployer-inspect/1",
            image: image.to_string(),
            ..Default::default()
        }
    }

    pub fn add(&mut self, check: impl Into<String>, verdict: Verdict, reason: impl Into<String>) {
        self.checks.push(Check {
            check: check.into(),
            verdict,
            reason: reason.into(),
        });
    }

    pub fn ok(&mut self, check: impl Into<String>, reason: impl Into<String>) {
        self.add(check, Verdict::Ok, reason)
    }

    pub fn warn(&mut self, check: impl Into<String>, reason: impl Into<String>) {
        self.add(check, Verdict::Warning, reason)
    }

    pub fn error(&mut self, check: impl Into<String>, reason: impl Into<String>) {
        self.add(check, Verdict::Error, reason)
    }

    /// Seal the verdict and exit code from the checks.
    pub fn finish(&mut self) {
        let v = self
            .checks
            .iter()
            .map(|c| c.verdict)
            .max()
            .unwrap_or(Verdict::Ok);
        self.verdict = Some(v);
        self.exit_code = v.exit_code();
    }

    /// The text form: a line a check, the plan, and the verdict.
    pub fn text(&self) -> String {
        let width = self.checks.iter().map(|c| c.check.len()).max().unwrap_or(0);
        let mut out = format!("image: {}\n", self.image);
        for c in &self.checks {
            out.push_str(&format!(
                "{:<7}  {:<width$}  {}\n",
                c.verdict.word(),
                c.check,
                c.reason
            ));
        }
        if !self.plan.is_empty() {
            out.push_str("deployment (as `deployer plan` says it for MAAS's config):\n");
            for l in &self.plan {
                out.push_str(&format!("  {l}\n"));
            }
        }
        let v = self.verdict.unwrap_or(Verdict::Ok);
        out.push_str(&format!(
            "verdict: {} ({})\n",
            v.word(),
            match v {
                Verdict::Ok => "MAAS would deploy this image",
                Verdict::Warning => "MAAS would deploy it, with the warnings above",
                Verdict::Error => "an error above would stop a deployment",
            }
        ));
        out
    }
}

pub use crate::plan::human;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worst_verdict_wins() {
        let mut r = Report::new("x");
        r.ok("a", "fine");
        r.finish();
        assert_eq!(r.exit_code, 0);
        r.warn("b", "hmm");
        r.finish();
        assert_eq!(r.exit_code, 1);
        r.error("c", "no");
        r.ok("d", "fine");
        r.finish();
        assert_eq!(r.exit_code, 2);
        let t = r.text();
        assert!(t.contains("error    c  no"), "{t}");
        assert!(t.ends_with("verdict: error (an error above would stop a deployment)\n"));
        let j = serde_json::to_value(&r).unwrap();
        assert_eq!(j["schema"], "deployer-inspect/1");
        assert_eq!(j["checks"][2]["verdict"], "error");
    }
}
