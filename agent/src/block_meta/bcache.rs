//! `bcache` items (curtin `bcache_handler`): `make-bcache -C` on the cache device (or the cache
//! set it already holds: several backing devices share one), `make-bcache -B` on the backing
//! device, both registered, the backing device attached to the set and its `cache_mode` set.
//! The kernel does what udev's bcache rules would do on an installed system; the new device is
//! the `bcacheN` that holds the backing device.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::config::Bcache;
use super::custom::Ctx;
use crate::tools::bcache;

pub fn describe(b: &Bcache) -> String {
    let mode = b
        .cache_mode
        .map(|m| format!(", cache_mode {}", m.name()))
        .unwrap_or_default();
    let what = if b.preserve {
        "preserve: verify backing and cache are bound, create nothing"
    } else {
        "make-bcache -C (or reuse its cache set), make-bcache -B, attach"
    };
    format!(
        "bcache {}: backing {}, cache {}{mode}; {what}",
        b.id,
        b.backing_device.as_deref().unwrap_or("?"),
        b.cache_device.as_deref().unwrap_or("?")
    )
}

fn wait<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> Result<T> {
    let t = Instant::now();
    loop {
        if let Some(v) = f() {
            return Ok(v);
        }
        if t.elapsed() > Duration::from_secs(30) {
            bail!("{what} did not appear within 30 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// curtin's make_dname for a named bcache device: the rule by its backing device's bcache
/// UUID (bcache minors change across boots), and the name as the backing device's label.
fn dname(sys: &crate::sysblock::Sysfs, backing: &Path, bk: &str, name: &str) -> Result<()> {
    let sup = bcache::super_show(backing)?;
    let Some((_, uuid)) = sup.iter().find(|(k, _)| k == "dev.uuid") else {
        tracing::warn!(
            "{}: no dev.uuid in its bcache superblock: no by-dname rule",
            backing.display()
        );
        return Ok(());
    };
    super::dname::write_layer(
        name,
        &super::dname::Volume::Bcache {
            cached_uuid: uuid.clone(),
        },
    )?;
    let label = sys.root().join("class/block").join(bk).join("bcache/label");
    std::fs::write(&label, super::dname::sanitize(name))
        .with_context(|| format!("writing {}", label.display()))
}

/// Make (or verify) the bcache device; returns `/dev/bcacheN`.
pub fn apply(ctx: &mut Ctx, b: &Bcache) -> Result<PathBuf> {
    let backing = ctx
        .dev(b.backing_device.as_deref().unwrap_or_default())?
        .clone();
    let cache = ctx
        .dev(b.cache_device.as_deref().unwrap_or_default())?
        .clone();
    let sys = ctx.sys.clone();
    let bk = sys.kname_of(&backing)?;
    let ck = sys.kname_of(&cache)?;
    let holder = |k: &str| sys.holders(k).into_iter().find(|h| h.starts_with("bcache"));
    if b.preserve {
        let set_of_cache = sys.bcache_set(&ck).with_context(|| {
            format!(
                "bcache '{}' (preserve: true): {} is not a registered cache device",
                b.id,
                cache.display()
            )
        })?;
        if sys.bcache_set(&bk).as_deref() != Some(set_of_cache.as_str()) {
            bail!(
                "bcache '{}' (preserve: true): {} is not attached to the cache set {set_of_cache} of {}",
                b.id,
                backing.display(),
                cache.display()
            );
        }
        let dev = holder(&bk).with_context(|| {
            format!(
                "bcache '{}': no bcache device on {}",
                b.id,
                backing.display()
            )
        })?;
        return Ok(PathBuf::from("/dev").join(dev));
    }
    let cset = match sys.bcache_set(&ck) {
        Some(c) => {
            tracing::info!(
                "{} already serves cache set {c}: reusing it",
                cache.display()
            );
            c
        }
        None => {
            let c = bcache::make_cache(&cache)?;
            bcache::register(&sys, &cache)?;
            let set = sys.root().join("fs/bcache").join(&c);
            wait(&format!("cache set {c}"), || set.exists().then_some(()))?;
            c
        }
    };
    if sys.is_bcache_backing(&bk) {
        bail!(
            "bcache '{}': {} is already a bcache backing device",
            b.id,
            backing.display()
        );
    }
    bcache::make_backing(&backing)?;
    bcache::register(&sys, &backing)?;
    let dev = wait(&format!("a bcache device on {}", backing.display()), || {
        holder(&bk)
    })?;
    bcache::attach(&sys, &bk, &cset)
        .with_context(|| format!("attaching {} to cache set {cset}", backing.display()))?;
    if let Some(m) = b.cache_mode {
        bcache::set_cache_mode(&sys, &dev, m.name())?;
    }
    let node = PathBuf::from("/dev").join(&dev);
    wait(&node.display().to_string(), || {
        Path::new(&node).exists().then_some(())
    })?;
    if let Some(name) = &b.name {
        dname(&sys, &backing, &bk, name)?;
    }
    Ok(node)
}
