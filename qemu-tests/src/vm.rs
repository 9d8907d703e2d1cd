//! QEMU runs: TCG (KVM only when asked with `DEPLOYER_QEMU_KVM=1`: it does not work on the
//! project's machines), virtio disks and NIC, the serial console captured to a file, a `results`
//! virtio serial port captured to another file, a timeout after which the VM is killed by its pid,
//! and the VM is killed too if the test panics.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const OVMF_CODE: &str = "/usr/share/OVMF/OVMF_CODE_4M.fd";
pub const OVMF_VARS: &str = "/usr/share/OVMF/OVMF_VARS_4M.fd";

/// What the VM boots.
#[derive(Debug, Clone)]
pub enum Boot {
    /// The ephemeral OS, as a network boot hands it over: kernel, initrd, command line (QEMU
    /// loads them through the firmware, SeaBIOS or OVMF).
    Kernel {
        kernel: PathBuf,
        initrd: PathBuf,
        append: String,
    },
    /// The first disk, through whatever bootloader it carries.
    Disk,
}

/// The machine's firmware.
#[derive(Debug, Clone)]
pub enum Firmware {
    /// SeaBIOS (QEMU's default).
    Bios,
    /// OVMF, with this variable store (created from OVMF's template when missing, and kept, so
    /// boot entries the deployment writes are there at the next boot, as on real hardware).
    Uefi { vars: PathBuf },
}

#[derive(Debug, Clone)]
pub struct Vm {
    pub name: String,
    pub boot: Boot,
    pub firmware: Firmware,
    /// Raw disk files, attached as virtio disks with serials `disk0`, `disk1`...; the first is
    /// the boot disk.
    pub disks: Vec<PathBuf>,
    pub mac: String,
    pub mem_mib: u32,
    pub timeout: Duration,
    /// Scratch space (OVMF's variable store when none is given).
    pub workdir: PathBuf,
    /// Where `<name>-console.log` and `<name>-results.log` go; kept after the test
    /// (`target/qemu-logs` by default).
    pub log_dir: PathBuf,
}

/// What a finished run left.
#[derive(Debug)]
pub struct Outcome {
    pub console: String,
    /// Lines from the results port, and `DEPLOYER-RESULT` lines of the console.
    pub results: Vec<String>,
    pub elapsed: Duration,
    pub console_path: PathBuf,
}

impl Outcome {
    /// The value of `DEPLOYER-RESULT key=value` (the first one seen).
    pub fn result(&self, key: &str) -> Option<String> {
        let prefix = format!("{key}=");
        self.results
            .iter()
            .find_map(|l| l.strip_prefix(&prefix))
            .map(|v| v.trim_end().to_string())
    }

    /// The console from the first line containing `marker` on (at most `n` lines): the agent's
    /// own output, for failure messages.
    pub fn from_marker(&self, marker: &str, n: usize) -> String {
        let lines: Vec<&str> = self.console.lines().collect();
        let start = lines.iter().position(|l| l.contains(marker)).unwrap_or(0);
        lines[start..]
            .iter()
            .take(n)
            .copied()
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The last lines of the console, for failure messages.
    pub fn tail(&self, n: usize) -> String {
        let lines: Vec<&str> = self.console.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }
}

pub const DEFAULT_MAC: &str = "52:54:00:12:34:56";

impl Vm {
    pub fn new(name: &str, boot: Boot, firmware: Firmware, workdir: &Path) -> Self {
        Vm {
            name: name.to_string(),
            boot,
            firmware,
            disks: Vec::new(),
            mac: DEFAULT_MAC.to_string(),
            mem_mib: 1024,
            timeout: Duration::from_secs(300),
            workdir: workdir.to_path_buf(),
            log_dir: testkit::target_dir().join("qemu-logs"),
        }
    }

    fn args(&self, results: &Path) -> Result<Vec<String>> {
        let accel = if std::env::var("DEPLOYER_QEMU_KVM").is_ok_and(|v| v == "1") {
            "kvm"
        } else {
            "tcg"
        };
        let mut a: Vec<String> = [
            "-machine",
            "q35",
            "-accel",
            accel,
            "-m",
            &self.mem_mib.to_string(),
            "-smp",
            "1",
            "-nodefaults",
            "-display",
            "none",
            "-monitor",
            "none",
            "-no-reboot",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        // The console comes out on QEMU's stdout; the harness timestamps it into the log.
        a.extend([
            "-chardev".into(),
            "stdio,id=console,signal=off".into(),
            "-serial".into(),
            "chardev:console".into(),
            // Entropy for the guest's early boot (Python, systemd, TLS) without waiting.
            "-device".into(),
            "virtio-rng-pci".into(),
        ]);
        a.extend([
            "-netdev".into(),
            "user,id=n0".into(),
            "-device".into(),
            // No option ROM: nobody PXE-boots here, and iPXE would add seconds under TCG.
            format!("virtio-net-pci,netdev=n0,mac={},romfile=", self.mac),
        ]);
        a.extend([
            "-device".into(),
            "virtio-serial-pci".into(),
            "-chardev".into(),
            format!("file,id=results,path={}", results.display()),
            "-device".into(),
            "virtserialport,chardev=results,name=results".into(),
        ]);
        // A direct kernel boot owns boot index 0; firmware boots start from the first disk.
        let from_disk = matches!(self.boot, Boot::Disk);
        for (i, d) in self.disks.iter().enumerate() {
            a.extend([
                "-drive".into(),
                format!(
                    "file={},format=raw,if=none,id=d{i},cache=unsafe",
                    d.display()
                ),
                "-device".into(),
                format!(
                    "virtio-blk-pci,drive=d{i},serial=disk{i}{}",
                    if i == 0 && from_disk {
                        ",bootindex=0"
                    } else {
                        ""
                    }
                ),
            ]);
        }
        if let Boot::Kernel {
            kernel,
            initrd,
            append,
        } = &self.boot
        {
            a.extend([
                "-kernel".into(),
                kernel.display().to_string(),
                "-initrd".into(),
                initrd.display().to_string(),
                "-append".into(),
                append.clone(),
            ]);
        }
        if let Firmware::Uefi { vars } = &self.firmware {
            if !vars.exists() {
                std::fs::copy(OVMF_VARS, vars).with_context(|| format!("copying {OVMF_VARS}"))?;
            }
            a.extend([
                "-drive".into(),
                format!("if=pflash,format=raw,unit=0,readonly=on,file={OVMF_CODE}"),
                "-drive".into(),
                format!("if=pflash,format=raw,unit=1,file={}", vars.display()),
            ]);
        }
        Ok(a)
    }

    /// Boot and wait until the guest powers off, or `timeout` (then kill it and fail with the
    /// console's tail). The VM is never left running.
    pub fn run(&self) -> Result<Outcome> {
        let (outcome, status, stderr) = self.start_and_wait()?;
        match status {
            None => bail!(
                "VM {} did not power off within {:?}; console ({}) ends:\n{}",
                self.name,
                self.timeout,
                outcome.console_path.display(),
                outcome.tail(40)
            ),
            Some(st) if !st.success() => bail!(
                "qemu for {} exited with {st}: {stderr}\nconsole ends:\n{}",
                self.name,
                outcome.tail(40)
            ),
            Some(_) => Ok(outcome),
        }
    }

    /// Boot and watch for `timeout`, for machines expected NOT to get anywhere (a disk that must
    /// not boot): returns what the console showed and whether the guest powered off by itself.
    pub fn watch(&self) -> Result<(Outcome, bool)> {
        let (outcome, status, stderr) = self.start_and_wait()?;
        if let Some(st) = status {
            if !st.success() {
                bail!("qemu for {} exited with {st}: {stderr}", self.name);
            }
        }
        Ok((outcome, status.is_some()))
    }

    fn start_and_wait(&self) -> Result<(Outcome, Option<std::process::ExitStatus>, String)> {
        std::fs::create_dir_all(&self.log_dir)
            .with_context(|| format!("creating {}", self.log_dir.display()))?;
        let console = self.log_dir.join(format!("{}-console.log", self.name));
        let results = self.log_dir.join(format!("{}-results.log", self.name));
        let _ = std::fs::remove_file(&results);
        let args = self.args(&results)?;
        let start = Instant::now();
        let child = Command::new("qemu-system-x86_64")
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting qemu-system-x86_64")?;
        let mut guard = KillOnDrop(Some(child));
        let stdout = guard
            .0
            .as_mut()
            .and_then(|c| c.stdout.take())
            .expect("qemu stdout");
        let log = std::fs::File::create(&console)
            .with_context(|| format!("creating {}", console.display()))?;
        let copier = std::thread::spawn(move || timestamp_lines(stdout, log, start));
        let status = loop {
            let child = guard.0.as_mut().expect("child");
            if let Some(st) = child.try_wait()? {
                break Some(st);
            }
            if start.elapsed() > self.timeout {
                break None;
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        let elapsed = start.elapsed();
        let mut child = guard.0.take().expect("child");
        if status.is_none() {
            let _ = child.kill();
        }
        let out = child.wait_with_output()?;
        let _ = copier.join();
        let outcome = self.collect(&console, &results, elapsed);
        Ok((
            outcome,
            status,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ))
    }

    fn collect(&self, console: &Path, results: &Path, elapsed: Duration) -> Outcome {
        let text =
            String::from_utf8_lossy(&std::fs::read(console).unwrap_or_default()).into_owned();
        let port =
            String::from_utf8_lossy(&std::fs::read(results).unwrap_or_default()).into_owned();
        let mut lines: Vec<String> = port
            .lines()
            .chain(text.lines())
            .filter_map(|l| {
                l.split_once("DEPLOYER-RESULT ")
                    .map(|(_, r)| r.trim_end_matches('\r').to_string())
            })
            .collect();
        lines.dedup();
        Outcome {
            console: text,
            results: lines,
            elapsed,
            console_path: console.to_path_buf(),
        }
    }
}

/// Copy the console into the log, each line prefixed with the seconds since QEMU started (where
/// a boot spends its time is the first question when one is slow).
fn timestamp_lines(from: impl std::io::Read, mut to: std::fs::File, start: Instant) {
    use std::io::{BufRead, Write};
    let mut r = std::io::BufReader::new(from);
    let mut line = Vec::new();
    loop {
        line.clear();
        match r.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                let _ = write!(to, "[{:7.1}] ", start.elapsed().as_secs_f64());
                let _ = to.write_all(&line);
            }
        }
    }
}

/// Kills the VM by its pid if the test unwinds while it runs.
struct KillOnDrop(Option<Child>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(c) = self.0.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
