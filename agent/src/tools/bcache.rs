//! bcache: `make-bcache` and `bcache-super-show` (bcache-tools), and the kernel's sysfs
//! controls (register, attach, cache_mode, stop), which udev's bcache rules would otherwise
//! drive; the ephemeral OS may run without udev.

use std::path::Path;

use anyhow::{bail, Context, Result};

use super::run;
use crate::sysblock::Sysfs;

/// The kernel refuses a cache device of 512 buckets or fewer; make-bcache's buckets are 512 KiB.
pub const MIN_CACHE_BYTES: u64 = 513 * 512 * 1024;

/// `make-bcache -C DEV`: a cache device; returns its cache set uuid (the `Set UUID:` line).
pub fn make_cache(dev: &Path) -> Result<String> {
    let out = run("make-bcache", &["-C".into(), dev.into()])?;
    parse_set_uuid(&out).with_context(|| {
        format!(
            "make-bcache -C {} printed no Set UUID:\n{out}",
            dev.display()
        )
    })
}

pub fn parse_set_uuid(text: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.trim().strip_prefix("Set UUID:"))
        .map(|u| u.trim().to_string())
}

/// `make-bcache -B DEV`: a backing device.
pub fn make_backing(dev: &Path) -> Result<()> {
    run("make-bcache", &["-B".into(), dev.into()])?;
    Ok(())
}

/// `bcache-super-show DEV` as key/value pairs (`cset.uuid`, `sb.version`, `dev.uuid`...).
pub fn super_show(dev: &Path) -> Result<Vec<(String, String)>> {
    let out = run("bcache-super-show", &[dev.into()])?;
    Ok(parse_super(&out))
}

pub fn parse_super(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let k = it.next()?;
            let v: Vec<&str> = it.collect();
            Some((k.to_string(), v.join(" ")))
        })
        .collect()
}

fn write(path: &Path, value: &str) -> Result<()> {
    std::fs::write(path, value).with_context(|| format!("writing {value:?} to {}", path.display()))
}

/// Tell the kernel about a bcache superblock on `dev` (`fs/bcache/register`). An already
/// registered device answers EBUSY/EEXIST: fine.
pub fn register(sys: &Sysfs, dev: &Path) -> Result<()> {
    let reg = sys.root().join("fs/bcache/register");
    if !reg.exists() {
        bail!(
            "{} is missing: the bcache module is not loaded",
            reg.display()
        );
    }
    match std::fs::write(&reg, dev.as_os_str().as_encoded_bytes()) {
        Ok(()) => Ok(()),
        Err(e) if matches!(e.raw_os_error(), Some(libc::EBUSY | libc::EEXIST)) => Ok(()),
        // The kernel says why only in its log (a cache of 512 buckets or fewer, a bad
        // superblock...); an already registered device is refused the same way.
        Err(e) => Err(e).with_context(|| {
            format!(
                "the kernel refused to register {} with bcache (its reason is in the kernel log)",
                dev.display()
            )
        }),
    }
}

/// Attach the backing device `kname` to cache set `cset`.
pub fn attach(sys: &Sysfs, backing_kname: &str, cset: &str) -> Result<()> {
    write(&sys.dir(backing_kname).join("bcache/attach"), cset)
}

/// Set `cache_mode` of `bcacheN`.
pub fn set_cache_mode(sys: &Sysfs, bcache_kname: &str, mode: &str) -> Result<()> {
    write(&sys.dir(bcache_kname).join("bcache/cache_mode"), mode)
}

/// Stop a bcache device (its backing side: `bcache/stop` of bcacheN or of the backing device).
pub fn stop_device(sys: &Sysfs, kname: &str) -> Result<()> {
    write(&sys.dir(kname).join("bcache/stop"), "1")
}

/// Stop a cache set (`fs/bcache/<uuid>/stop`): its cache devices are released.
pub fn stop_set(sys: &Sysfs, cset: &str) -> Result<()> {
    write(&sys.root().join("fs/bcache").join(cset).join("stop"), "1")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs() {
        let made = "UUID:\t\t\tc1a3...\nSet UUID:\t\t5f0f3b35-1c6e-4f4e-9f40-0c1c2b1a0d11\nversion:\t\t0\n";
        assert_eq!(
            parse_set_uuid(made).as_deref(),
            Some("5f0f3b35-1c6e-4f4e-9f40-0c1c2b1a0d11")
        );
        let sb =
            parse_super("sb.magic\t\tok\nsb.version\t\t1 [backing device]\ncset.uuid\t\tabc\n");
        assert_eq!(sb[1], ("sb.version".into(), "1 [backing device]".into()));
        assert_eq!(sb[2].1, "abc");
    }

    #[test]
    fn sysfs_controls_write_where_the_kernel_reads() {
        let t = crate::sysblock::fake::Tree::new();
        t.disk("vdb").disk("bcache0");
        let sys = t.sysfs();
        std::fs::create_dir_all(sys.dir("vdb").join("bcache")).unwrap();
        std::fs::create_dir_all(sys.dir("bcache0").join("bcache")).unwrap();
        attach(&sys, "vdb", "uuid-1").unwrap();
        set_cache_mode(&sys, "bcache0", "writeback").unwrap();
        assert_eq!(
            std::fs::read_to_string(sys.dir("vdb").join("bcache/attach")).unwrap(),
            "uuid-1"
        );
        assert_eq!(
            std::fs::read_to_string(sys.dir("bcache0").join("bcache/cache_mode")).unwrap(),
            "writeback"
        );
        let e = register(&sys, Path::new("/dev/vdb")).unwrap_err();
        assert!(e.to_string().contains("bcache module is not loaded"), "{e}");
    }
}
