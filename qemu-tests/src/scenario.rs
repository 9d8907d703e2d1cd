//! One whole deployment, as a provisioning system runs it: a server on the host's loopback serves
//! the config and the image and records the webhook events; the ephemeral OS boots with
//! `deployer.config=URL` on its command line and runs `deployer install` against a blank disk;
//! then the deployed disk boots on its own with a NoCloud seed, and reports back.

use crate::vm::{Boot, Firmware, Outcome, Vm};
use crate::{ephemeral, guest_url, seed};
use anyhow::{bail, Context, Result};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;
use testkit::Server;

/// The webhook path and OAuth credentials of the scenarios (MAAS-style PLAINTEXT).
pub const EVENTS_PATH: &str = "/MAAS/metadata/status/node-1";
pub const CONSUMER_KEY: &str = "ck-qemu";
pub const TOKEN_KEY: &str = "tk-qemu";
pub const TOKEN_SECRET: &str = "ts-qemu";
/// MAAS's anonymous preseed (`cloud-config-url`) and 3.8's installer endpoint.
pub const MAAS_PRESEED_PATH: &str = "/MAAS/metadata/latest/by-id/node-1/";
pub const MAAS_INSTALLER_PATH: &str = "/MAAS/metadata/curtin/2012-03-01/curtin-installer";

pub struct Deployment {
    /// Prefix of the VM names, hence of the logs in `target/qemu-logs`.
    pub name: String,
    pub server: Server,
    pub dir: tempfile::TempDir,
    /// The machine's disk (a sparse raw file), blank before the deployment.
    pub disk: PathBuf,
    pub disk_size: u64,
    /// More disks (serials `disk1`, `disk2`...), after the first.
    pub extra_disks: Vec<PathBuf>,
    /// The machine's firmware, the same for the deployment and the first boot (OVMF keeps its
    /// variable store across both).
    pub firmware: Firmware,
}

impl Deployment {
    /// A server serving `image` at `/image`, and a blank disk of `disk_size` bytes, on a machine
    /// with UEFI (`uefi`) or BIOS firmware.
    pub fn new(name: &str, image: &Path, disk_size: u64, uefi: bool) -> Result<Self> {
        let dir = tempfile::tempdir_in(testkit::loopdev::scratch_root())?;
        let disk = dir.path().join("disk.raw");
        std::fs::File::create(&disk)?.set_len(disk_size)?;
        let server = Server::start();
        server.serve_file("/image", image);
        let firmware = if uefi {
            Firmware::Uefi {
                vars: dir.path().join("OVMF_VARS.fd"),
            }
        } else {
            Firmware::Bios
        };
        Ok(Deployment {
            name: name.to_string(),
            firmware,
            server,
            dir,
            disk,
            disk_size,
            extra_disks: Vec::new(),
        })
    }

    /// Add a blank disk of `size` bytes after the others; returns its file.
    pub fn add_disk(&mut self, size: u64) -> Result<PathBuf> {
        let p = self
            .dir
            .path()
            .join(format!("disk{}.raw", self.extra_disks.len() + 1));
        std::fs::File::create(&p)?.set_len(size)?;
        self.extra_disks.push(p.clone());
        Ok(p)
    }

    /// The machine's disks in order.
    pub fn disks(&self) -> Vec<PathBuf> {
        std::iter::once(self.disk.clone())
            .chain(self.extra_disks.iter().cloned())
            .collect()
    }

    pub fn url(&self, path: &str) -> String {
        guest_url(&self.server, path)
    }

    /// The `reporting` section that sends MAAS webhook events to this server.
    pub fn reporting_yaml(&self) -> String {
        format!(
            "reporting:\n  maas:\n    type: webhook\n    endpoint: {}\n    consumer_key: {CONSUMER_KEY}\n    \
             token_key: {TOKEN_KEY}\n    token_secret: {TOKEN_SECRET}\n    level: DEBUG\n",
            self.url(EVENTS_PATH)
        )
    }

    /// Boot the ephemeral OS with `config` served at `/config.yaml`; returns when it powered off.
    /// The deployer must be the static build (`scripts/build-static`).
    pub fn deploy(&self, config: &str, timeout: Duration) -> Result<Outcome> {
        self.server
            .serve_bytes("/config.yaml", config.as_bytes().to_vec());
        let cmdline = format!(
            "console=ttyS0 panic=-1 quiet deployer.config={}",
            self.url("/config.yaml")
        );
        self.boot_ephemeral(cmdline, timeout)
    }

    fn boot_ephemeral(&self, append: String, timeout: Duration) -> Result<Outcome> {
        let (kernel, _) = ephemeral::kernel()?;
        let bin = ephemeral::deployer_binary();
        let kind = crate::run("file", &["-b", &bin.display().to_string()])?;
        if !kind.contains("static") {
            bail!(
                "{} is not static ({}): run scripts/build-static first",
                bin.display(),
                kind.trim()
            );
        }
        let initrd = ephemeral::initramfs(&kernel, &bin, self.dir.path())?;
        let mut vm = Vm::new(
            &format!("{}-deploy", self.name),
            Boot::Kernel {
                kernel: kernel.vmlinuz(),
                initrd,
                append,
            },
            self.firmware.clone(),
            self.dir.path(),
        );
        vm.disks = self.disks();
        vm.mem_mib = 2048;
        vm.timeout = timeout;
        vm.run().context("ephemeral deployment run")
    }

    /// Boot the ephemeral OS as MAAS boots it: only `cloud-config-url=` on its command line
    /// (no `deployer.config`); this server plays MAAS's metadata service, serving `preseed`
    /// anonymously and `installer` (a curtin pack archive) OAuth-signed at MAAS 3.8's
    /// `curtin-installer` endpoint. Returns when it powered off.
    pub fn deploy_maas(
        &self,
        preseed: &str,
        installer: &str,
        timeout: Duration,
    ) -> Result<Outcome> {
        self.server
            .serve_bytes(MAAS_PRESEED_PATH, preseed.as_bytes().to_vec());
        self.server
            .serve_bytes(MAAS_INSTALLER_PATH, installer.as_bytes().to_vec());
        self.server
            .require_auth(MAAS_INSTALLER_PATH, &format!("oauth_token=\"{TOKEN_KEY}\""));
        let cmdline = format!(
            "console=ttyS0 panic=-1 quiet ip=::::node-1:BOOTIF:dhcp cloud-config-url={}?op=get_preseed",
            self.url(MAAS_PRESEED_PATH)
        );
        self.boot_ephemeral(cmdline, timeout)
    }

    /// A MAAS deployment preseed (`datasource.MAAS` pointing at curtin's metadata, reporting).
    pub fn maas_preseed(&self) -> String {
        format!(
            "#cloud-config\ndatasource:\n  MAAS:\n    metadata_url: {}\n    consumer_key: {CONSUMER_KEY}\n    \
             token_key: {TOKEN_KEY}\n    token_secret: {TOKEN_SECRET}\n{}",
            self.url("/MAAS/metadata/curtin"),
            self.reporting_yaml()
        )
    }

    /// Whether MAAS's installer was fetched with the node's OAuth credentials.
    pub fn installer_fetched(&self) -> bool {
        self.server
            .requests()
            .iter()
            .any(|r| r.path == MAAS_INSTALLER_PATH && r.header("authorization").is_some())
    }

    /// The console of a deployment run from the agent's start on.
    pub fn agent_output(run: &Outcome) -> String {
        run.from_marker("running deployer install", 200)
    }

    /// Boot the deployed disk with a NoCloud seed naming it `hostname`.
    pub fn first_boot(&self, hostname: &str, timeout: Duration) -> Result<Outcome> {
        let seed = seed::nocloud(self.dir.path(), hostname)?;
        let mut vm = Vm::new(
            "first-boot",
            Boot::Disk,
            self.firmware.clone(),
            self.dir.path(),
        );
        vm.disks = self.disks();
        vm.disks.push(seed);
        vm.timeout = timeout;
        vm.run().context("first boot of the deployed disk")
    }

    /// Boot the deployed disks with no seed: the deployed system reports by itself (the storage
    /// scenarios' [`crate::seed::storage_report_files`]) and powers off.
    pub fn boot_and_report(&self, name: &str, timeout: Duration) -> Result<Outcome> {
        let mut vm = Vm::new(name, Boot::Disk, self.firmware.clone(), self.dir.path());
        vm.disks = self.disks();
        vm.mem_mib = 2048;
        vm.timeout = timeout;
        vm.run().with_context(|| format!("boot {name}"))
    }

    /// Try to boot the disk (after a failed deployment): what the console showed in `timeout`.
    pub fn boot_attempt(&self, timeout: Duration) -> Result<Outcome> {
        let seed = seed::nocloud(self.dir.path(), "must-not-boot")?;
        let mut vm = Vm::new(
            "boot-attempt",
            Boot::Disk,
            self.firmware.clone(),
            self.dir.path(),
        );
        vm.disks = vec![self.disk.clone(), seed];
        vm.timeout = timeout;
        Ok(vm.watch()?.0)
    }

    /// The events posted to the webhook.
    pub fn events(&self) -> Vec<Value> {
        self.server.posted_json(EVENTS_PATH)
    }

    /// The Authorization headers of the event POSTs.
    pub fn event_auth_headers(&self) -> Vec<String> {
        self.server
            .requests()
            .into_iter()
            .filter(|r| r.method == "POST" && r.path == EVENTS_PATH)
            .map(|r| r.header("authorization").unwrap_or("").to_string())
            .collect()
    }
}

/// `(name, event_type, result)` of the events for `cmd-install` and its stages (two levels),
/// in arrival order: what MAAS acts on.
pub fn stage_events(events: &[Value]) -> Vec<(String, String, String)> {
    events
        .iter()
        .filter_map(|e| {
            let name = e.get("name")?.as_str()?.to_string();
            if name.split('/').count() > 2 || !name.starts_with("cmd-install") {
                return None;
            }
            let ty = e.get("event_type")?.as_str()?.to_string();
            let res = e
                .get("result")
                .and_then(|r| r.as_str())
                .unwrap_or("")
                .to_string();
            Some((name, ty, res))
        })
        .collect()
}

/// Check that each header is MAAS's OAuth1 PLAINTEXT with our credentials.
pub fn check_oauth(headers: &[String]) -> Result<()> {
    if headers.is_empty() {
        bail!("no events were posted");
    }
    for h in headers {
        let ok = h.starts_with("OAuth ")
            && h.contains(CONSUMER_KEY)
            && h.contains(TOKEN_KEY)
            && h.contains("PLAINTEXT")
            && h.contains(TOKEN_SECRET)
            && h.contains("oauth_timestamp")
            && h.contains("oauth_nonce");
        if !ok {
            bail!("event POST without MAAS's OAuth header: {h:?}");
        }
    }
    Ok(())
}

/// `(first, last)` sector of partition `n` of a disk image file, from `sgdisk -i`.
pub fn partition_extent(disk: &Path, n: u32) -> Result<(u64, u64)> {
    let info = crate::run(
        "sgdisk",
        &["-i", &n.to_string(), &disk.display().to_string()],
    )?;
    let field = |name: &str| -> Result<u64> {
        info.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|l| l.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("no {name:?} for partition {n} in:\n{info}"))
    };
    Ok((field("First sector: ")?, field("Last sector: ")?))
}

/// The size in bytes of the ext4 filesystem starting at byte `offset` of a disk image, read
/// from its superblock (the host needs no mount and no loop device for it).
pub fn ext4_size(disk: &Path, offset: u64) -> Result<u64> {
    use std::os::unix::fs::FileExt;
    let f = std::fs::File::open(disk).with_context(|| format!("opening {}", disk.display()))?;
    let mut sb = [0u8; 1024];
    f.read_exact_at(&mut sb, offset + 1024)
        .with_context(|| format!("reading the superblock at {offset} of {}", disk.display()))?;
    let u32_at = |o: usize| u32::from_le_bytes(sb[o..o + 4].try_into().unwrap()) as u64;
    if u16::from_le_bytes([sb[0x38], sb[0x39]]) != 0xEF53 {
        bail!("no ext4 superblock at byte {offset} of {}", disk.display());
    }
    let block = 1024u64 << u32_at(0x18);
    let incompat_64bit = u32_at(0x60) & 0x80 != 0;
    let blocks = u32_at(0x4)
        | if incompat_64bit {
            u32_at(0x150) << 32
        } else {
            0
        };
    Ok(blocks * block)
}
