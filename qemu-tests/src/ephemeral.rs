//! The ephemeral OS the agent runs in, as a provisioning system boots it over the network: the
//! Debian kernel, and an initramfs holding busybox (static), the kernel modules for virtio disks,
//! network and console, ext4 and vfat, the `deployer` binary (with a `curtin` link), and an init
//! that loads the modules, takes a DHCP lease and starts the agent from the kernel command line.
//!
//! Kernel command line:
//! - `deployer.config=URL`: run `deployer install` (it reads the URL from /proc/cmdline) and
//!   report its exit status, as a real ephemeral OS would;
//! - `cloud-config-url=URL` alone (MAAS's): the same, deployer taking MAAS's installer;
//! - `deployer.probe=URL`: prove the environment without the agent's install: print a marker,
//!   run `deployer --version`, fetch URL with busybox wget and print it.
//!
//! Either way init prints `DEPLOYER-RESULT key=value` lines on the console (and on the
//! `results` virtio serial port when there is one), syncs and powers off.

use crate::cache::{self, Outcome};
use crate::{run, shell};
use anyhow::{bail, Context, Result};
use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The modules init loads (with their dependencies, resolved from modules.dep here).
pub const MODULES: &[&str] = &[
    "virtio_pci",
    "virtio_blk",
    "virtio_net",
    "virtio_console",
    "virtio_rng",
    "crc32c_generic",
    "ext4",
    "vfat",
    "nls_cp437",
    "nls_ascii",
    "nls_utf8",
    "efivarfs",
];

/// The storage layers a deployment builds (issue 14): md personalities, device-mapper (linear
/// and striped are in dm-mod; crypt, raid, snapshot, mirror), bcache, xfs, and the kernel
/// crypto of LUKS's default aes-xts-plain64 (AF_ALG skcipher for keyslots, xts over ecb; the
/// kernel loads crypto modules itself only where modprobe works).
pub const STORAGE_MODULES: &[&str] = &[
    "linear",
    "raid0",
    "raid1",
    "raid456",
    "raid10",
    "dm-mod",
    "dm-crypt",
    "dm-raid",
    "dm-snapshot",
    "dm-mirror",
    "bcache",
    "xfs",
    "algif_skcipher",
    "xts",
    "ecb",
];

/// Tools a real ephemeral OS (MAAS's is a full Ubuntu) has and the agent runs: filesystems,
/// partition tables, block ids. Copied from the host with their libraries into
/// `/usr/local/sbin`, first in init's PATH, so they win over busybox's smaller applets.
pub const HOST_TOOLS: &[&str] = &[
    "mke2fs",
    "mkfs.ext4",
    "e2fsck",
    "resize2fs",
    "tune2fs",
    "mkfs.vfat",
    "mkfs.fat",
    "fsck.vfat",
    "mkswap",
    "blkid",
    "wipefs",
    "sgdisk",
    "sfdisk",
    "partx",
    "unshare",
];

/// The storage tools of a real ephemeral OS (mdadm, lvm2, cryptsetup-bin, bcache-tools,
/// xfsprogs), copied like [`HOST_TOOLS`]. LVM's commands are all the one `lvm` program.
pub const STORAGE_TOOLS: &[&str] = &[
    "mdadm",
    "lvm",
    "dmsetup",
    "cryptsetup",
    "make-bcache",
    "bcache-super-show",
    "mkfs.xfs",
    "xfs_growfs",
];

/// The extracted Debian kernel package: `vmlinuz` and `lib/modules/<version>`.
pub struct Kernel {
    pub dir: PathBuf,
    pub version: String,
}

impl Kernel {
    pub fn vmlinuz(&self) -> PathBuf {
        self.dir.join(format!("boot/vmlinuz-{}", self.version))
    }
    pub fn modules(&self) -> PathBuf {
        self.dir.join(format!("lib/modules/{}", self.version))
    }
}

/// The package `linux-image-amd64` points at in the machine's apt sources, e.g.
/// `linux-image-6.1.0-56-amd64`, and its version (one apt-cache call: it costs seconds).
fn kernel_package() -> Result<(String, String)> {
    let show = run(
        "apt-cache",
        &["show", "--no-all-versions", "linux-image-amd64"],
    )?;
    let dep = show
        .lines()
        .find_map(|l| l.strip_prefix("Depends: "))
        .and_then(|d| {
            d.split(',')
                .map(str::trim)
                .find(|p| p.starts_with("linux-image-"))
        })
        .context("apt-cache show linux-image-amd64 names no linux-image-* dependency")?;
    // "linux-image-6.1.0-56-amd64 (= 6.1.192-2)"
    let (pkg, version) = dep
        .split_once(" (= ")
        .map(|(p, v)| (p.to_string(), v.trim_end_matches(')').to_string()))
        .with_context(|| format!("unexpected dependency {dep:?} of linux-image-amd64"))?;
    Ok((pkg, version))
}

/// The Debian kernel, downloaded as a .deb (`apt-get download`, not installed on the host),
/// unpacked and depmod'ed in the cache.
pub fn kernel() -> Result<(Kernel, Outcome)> {
    let (pkg, version) = kernel_package()?;
    let release = pkg.trim_start_matches("linux-image-").to_string();
    let recipe = format!("kernel v1\n{pkg}={version}\n");
    let (dir, outcome) = cache::entry("kernel", &recipe, |tmp| {
        let dl = tmp.join("dl");
        std::fs::create_dir_all(&dl)?;
        shell(&format!(
            "cd '{}' && apt-get download -q '{pkg}={version}' 2>&1",
            dl.display()
        ))?;
        let deb = std::fs::read_dir(&dl)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| p.extension().is_some_and(|e| e == "deb"))
            .context("apt-get download left no .deb")?;
        run(
            "dpkg-deb",
            &["-x", &deb.display().to_string(), &tmp.display().to_string()],
        )?;
        std::fs::remove_dir_all(&dl)?;
        run("depmod", &["-b", &tmp.display().to_string(), &release])?;
        Ok(())
    })?;
    Ok((
        Kernel {
            dir,
            version: release,
        },
        outcome,
    ))
}

/// Modules to load, dependencies first, as paths relative to lib/modules/<version>; modules
/// built into the kernel are left out.
pub fn module_order(k: &Kernel, wanted: &[&str]) -> Result<Vec<String>> {
    let dep_file = k.modules().join("modules.dep");
    let text = std::fs::read_to_string(&dep_file)
        .with_context(|| format!("reading {}", dep_file.display()))?;
    let builtin = std::fs::read_to_string(k.modules().join("modules.builtin")).unwrap_or_default();
    let deps: Vec<(String, Vec<String>)> = text
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(m, d)| {
            (
                m.to_string(),
                d.split_whitespace().map(String::from).collect(),
            )
        })
        .collect();
    let name_of = |path: &str| {
        Path::new(path)
            .file_name()
            .and_then(|f| f.to_str())
            .map(|f| f.split(".ko").next().unwrap_or(f).replace('-', "_"))
            .unwrap_or_default()
    };
    let mut order = Vec::new();
    let mut seen = BTreeSet::new();
    fn visit(
        m: &str,
        deps: &[(String, Vec<String>)],
        order: &mut Vec<String>,
        seen: &mut BTreeSet<String>,
    ) {
        if !seen.insert(m.to_string()) {
            return;
        }
        if let Some((_, ds)) = deps.iter().find(|(p, _)| p == m) {
            for d in ds {
                visit(d, deps, order, seen);
            }
        }
        order.push(m.to_string());
    }
    for want in wanted {
        let want_n = want.replace('-', "_");
        if let Some((path, _)) = deps.iter().find(|(p, _)| name_of(p) == want_n) {
            visit(path, &deps, &mut order, &mut seen);
        } else if !builtin.lines().any(|l| name_of(l) == want_n) {
            bail!(
                "module {want} is neither in {} nor built in",
                dep_file.display()
            );
        }
    }
    Ok(order)
}

/// The init script (busybox sh).
pub const INIT: &str = r#"#!/bin/sh
export PATH=/usr/local/sbin:/usr/bin:/bin:/usr/sbin:/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /run /tmp /var/log
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /tmp
mkdir -p /run/lock /run/lvm /run/cryptsetup /run/mdadm
echo "deployer-ephemeral: init started"
while read -r m; do
    case "$m" in */efivarfs.ko) [ -d /sys/firmware/efi ] || continue;; esac
    insmod "/lib/modules/$(uname -r)/$m" || echo "insmod $m failed"
done < /etc/modules.order
[ -d /sys/firmware/efi ] && mount -t efivarfs efivarfs /sys/firmware/efi/efivars
result() {
    echo "DEPLOYER-RESULT $*"
    for p in /dev/vport*p*; do [ -c "$p" ] && echo "DEPLOYER-RESULT $*" > "$p"; done
}
param() { for a in $(cat /proc/cmdline); do case "$a" in "$1"=*) echo "${a#*=}";; esac; done; }
ip link set lo up
i=0; while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done
ip link set eth0 up
if udhcpc -i eth0 -n -q -t 10 -T 1 -s /etc/udhcpc.script; then
    result "dhcp=$(ip -4 -o addr show eth0 | awk '{print $4}')"
else
    result "dhcp=failed"
fi
cfg=$(param deployer.config)
maas=$(param cloud-config-url)
probe=$(param deployer.probe)
if [ -n "$cfg" ] || [ -n "$maas" ]; then
    echo "deployer-ephemeral: running deployer install (config ${cfg:-from MAAS: $maas})"
    deployer install
    result "install-exit=$?"
elif [ -n "$probe" ]; then
    echo "deployer-ephemeral: probe"
    result "marker=ephemeral-ok"
    result "version=$(deployer --version 2>&1)"
    result "curtin=$(curtin --version 2>&1)"
    result "fetched=$(wget -q -O - "$probe" 2>&1)"
    result "disks=$(cd /sys/block && echo vd*)"
    result "mkfs=$(mkfs.ext4 -V 2>&1 | head -n 1)"
    result "sgdisk=$(sgdisk --version 2>&1 | head -n 1)"
    result "efivars=$(ls /sys/firmware/efi/efivars 2>/dev/null | wc -l)"
else
    result "nothing-to-do"
fi
sync
echo "deployer-ephemeral: powering off"
poweroff -f
"#;

/// busybox's udhcpc hands the lease to this script.
const UDHCPC_SCRIPT: &str = r#"#!/bin/sh
case "$1" in
  bound|renew)
    ip addr flush dev "$interface"
    ip addr add "$ip/${mask:-24}" dev "$interface"
    [ -n "$router" ] && ip route add default via "${router%% *}" dev "$interface"
    : > /etc/resolv.conf
    for d in $dns; do echo "nameserver $d" >> /etc/resolv.conf; done
    ;;
esac
exit 0
"#;

/// Build `initrd.gz` in `out_dir` carrying `deployer_bin` (static; or dynamic, its libraries are
/// then copied in as `ldd` lists them). Returns the path.
pub fn initramfs(k: &Kernel, deployer_bin: &Path, out_dir: &Path) -> Result<PathBuf> {
    let root = out_dir.join("initramfs-root");
    if root.exists() {
        std::fs::remove_dir_all(&root)?;
    }
    for d in [
        "bin", "sbin", "usr/bin", "usr/sbin", "etc", "proc", "sys", "dev", "run", "tmp", "root",
    ] {
        std::fs::create_dir_all(root.join(d))?;
    }
    std::fs::copy("/bin/busybox", root.join("bin/busybox"))
        .context("copying /bin/busybox (busybox-static)")?;
    let applets = run("/bin/busybox", &["--list-full"])?;
    for a in applets.lines().filter(|a| !a.is_empty()) {
        let link = root.join(a);
        if let Some(p) = link.parent() {
            std::fs::create_dir_all(p)?;
        }
        if !link.exists() {
            std::os::unix::fs::symlink("/bin/busybox", &link)?;
        }
    }
    let bin = root.join("usr/bin/deployer");
    std::fs::copy(deployer_bin, &bin)
        .with_context(|| format!("copying {}", deployer_bin.display()))?;
    let _ = std::fs::remove_file(root.join("usr/bin/curtin"));
    std::os::unix::fs::symlink("deployer", root.join("usr/bin/curtin"))?;
    copy_libs(deployer_bin, &root)?;
    let tools = root.join("usr/local/sbin");
    std::fs::create_dir_all(&tools)?;
    for t in HOST_TOOLS.iter().chain(STORAGE_TOOLS) {
        let src = crate::which(t)
            .with_context(|| format!("{t} is missing on the host: run scripts/setup"))?;
        // Copy the file a link points to: mkfs.ext4 -> mke2fs must stay a working program.
        std::fs::copy(&src, tools.join(t)).with_context(|| format!("copying {}", src.display()))?;
        copy_libs(&src, &root)?;
    }
    copy_python(&root)?;
    if Path::new("/etc/mke2fs.conf").exists() {
        // Without it mke2fs falls back to ext2-era defaults.
        std::fs::copy("/etc/mke2fs.conf", root.join("etc/mke2fs.conf"))?;
    }
    let moddir = format!("lib/modules/{}", k.version);
    let wanted: Vec<&str> = MODULES.iter().chain(STORAGE_MODULES).copied().collect();
    let order = module_order(k, &wanted)?;
    for m in &order {
        let dst = root.join(&moddir).join(m);
        std::fs::create_dir_all(dst.parent().unwrap())?;
        std::fs::copy(k.modules().join(m), &dst)?;
    }
    std::fs::write(root.join("etc/modules.order"), order.join("\n") + "\n")?;
    write_exec(&root.join("init"), INIT)?;
    write_exec(&root.join("etc/udhcpc.script"), UDHCPC_SCRIPT)?;
    std::fs::write(root.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n")?;
    std::fs::write(root.join("etc/group"), "root:x:0:\n")?;
    let out = out_dir.join("initrd.gz");
    shell(&format!(
        "cd '{}' && find . | cpio -o -H newc --quiet | gzip -1 > '{}'",
        root.display(),
        out.display()
    ))?;
    std::fs::remove_dir_all(&root)?;
    Ok(out)
}

/// Python 3 and PyYAML, as a MAAS ephemeral OS has them for packer-maas hooks: the host's
/// Debian python3 and python3-yaml (scripts/setup installs both), without the test suites, the
/// GUI and build parts, and the byte-code caches (about 14 MB before gzip).
fn copy_python(root: &Path) -> Result<()> {
    let exe = std::fs::canonicalize("/usr/bin/python3")
        .context("/usr/bin/python3 is missing on the host: run scripts/setup")?;
    let name = exe
        .file_name()
        .and_then(|n| n.to_str())
        .context("python3's name")?
        .to_string();
    std::fs::copy(&exe, root.join("usr/bin").join(&name))?;
    let _ = std::fs::remove_file(root.join("usr/bin/python3"));
    std::os::unix::fs::symlink(&name, root.join("usr/bin/python3"))?;
    copy_libs(&exe, root)?;
    let skip = [
        "test",
        "tests",
        "idlelib",
        "tkinter",
        "turtledemo",
        "ensurepip",
        "lib2to3",
        "pydoc_data",
        "__pycache__",
        "site-packages",
    ];
    let excludes: String = skip
        .iter()
        .map(|d| format!(" --exclude='{d}'"))
        .collect::<String>()
        + " --exclude='config-*'";
    let stdlib = format!("/usr/lib/{name}");
    let dist = "/usr/lib/python3/dist-packages";
    for (from, what) in [(stdlib.as_str(), "."), (dist, "yaml"), (dist, "_yaml")] {
        let to = root.join(from.trim_start_matches('/'));
        std::fs::create_dir_all(&to)?;
        shell(&format!(
            "tar -C '{from}'{excludes} -cf - '{what}' | tar -C '{}' -xf -",
            to.display()
        ))
        .with_context(|| format!("copying {from}/{what} (python3-yaml installed?)"))?;
    }
    // The C modules' libraries (ssl, ffi, expat, lzma, yaml ...).
    let sos = shell(&format!(
        "find '{}' '{}' -name '*.so'",
        root.join(stdlib.trim_start_matches('/')).display(),
        root.join(dist.trim_start_matches('/')).display()
    ))?;
    for so in sos.lines().filter(|l| !l.is_empty()) {
        copy_libs(Path::new(so), root)?;
    }
    Ok(())
}

fn write_exec(p: &Path, text: &str) -> Result<()> {
    std::fs::write(p, text).with_context(|| format!("writing {}", p.display()))?;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755))?;
    Ok(())
}

/// A dynamically linked binary brings its shared libraries and loader (a static one has none).
fn copy_libs(bin: &Path, root: &Path) -> Result<()> {
    let out = std::process::Command::new("ldd").arg(bin).output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    for l in text.lines() {
        let path = l
            .split_whitespace()
            .find(|w| w.starts_with('/'))
            .map(PathBuf::from);
        if let Some(p) = path {
            let dst = root.join(p.strip_prefix("/").unwrap_or(&p));
            std::fs::create_dir_all(dst.parent().unwrap())?;
            std::fs::copy(&p, &dst).with_context(|| format!("copying {}", p.display()))?;
        }
    }
    Ok(())
}

/// The deployer binary to put in the ephemeral OS: `$DEPLOYER_EPHEMERAL_BIN`, else the static
/// release build of `scripts/build-static` when present, else the debug build next to the tests
/// (dynamic; its libraries go in with it).
pub fn deployer_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("DEPLOYER_EPHEMERAL_BIN") {
        return p.into();
    }
    let static_bin = testkit::target_dir()
        .parent()
        .map(|t| t.join("x86_64-unknown-linux-gnu/release/deployer"));
    match static_bin {
        Some(p) if p.exists() => p,
        _ => testkit::deployer_bin(),
    }
}
