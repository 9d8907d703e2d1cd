//! The sources MAAS sends besides tarballs: `cp://DIR`, `fsimage:` (a squashfs on a path),
//! `squashfs://` over HTTP and `fsimage-layered:`, each extracted by `deployer extract` onto a
//! real ext4 loop mount and compared, entry by entry (type, mode, owner, size, mtime, device
//! numbers, link target, content hash, every xattr including ACLs and capabilities, hard-link
//! groups), with what curtin's own `rsync -aXHAS --one-file-system` makes of the same tree.

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use testkit::{require_root, sh, LoopDisk, MountGuard, Server};

/// A tree with every kind of entry and attribute rsync -aXHAS keeps. Its times are in the
/// past: rsync leaves the time of a node it has just made when it agrees to the second.
fn rich_tree(root: &Path) {
    let r = root.display();
    sh(&format!(
        "mkdir -p {r}/etc {r}/usr/bin {r}/var/empty {r}/dev {r}/srv/acl {r}/mnt \
         && echo 'ID=demo' > {r}/etc/os-release \
         && printf 'secret' > {r}/etc/shadow && chmod 0640 {r}/etc/shadow && chown 0:42 {r}/etc/shadow \
         && cp /bin/busybox {r}/usr/bin/ping && chmod 4755 {r}/usr/bin/ping \
         && setcap cap_net_raw+ep {r}/usr/bin/ping \
         && ln {r}/etc/os-release {r}/usr/os-release-hardlink \
         && ln -s ../etc/os-release {r}/usr/os-release-link \
         && ln -s /nonexistent/abs {r}/dangling \
         && mknod {r}/dev/null c 1 3 && mknod {r}/dev/loop99 b 7 99 && mkfifo {r}/dev/fifo \
         && chmod 0666 {r}/dev/null \
         && echo data > {r}/srv/acl/file && setfacl -m u:1234:rw- {r}/srv/acl/file \
         && setfacl -d -m g:99:r-x {r}/srv/acl \
         && setfattr -n user.note -v hello {r}/etc/os-release \
         && truncate -s 8M {r}/var/sparse && printf end >> {r}/var/sparse \
         && chown -h 1000:1000 {r}/usr/os-release-link && chown 1000:100 {r}/var/empty \
         && chmod 1777 {r}/var/empty \
         && find {r} -exec touch -h -d '2010-01-01 00:00:00' {{}} + \
         && touch -d '2001-02-03 04:05:06.123456789' {r}/etc/shadow"
    ));
}

/// Every entry of a tree, one line each, in path order (atime left out: reading changes it).
/// Hard links are shown by the first path (in sorted order) of their inode.
fn manifest(root: &Path) -> String {
    let mut lines = vec![];
    let mut inodes: HashMap<u64, String> = HashMap::new();
    walk(root, root, &mut lines, &mut inodes);
    lines.sort();
    let mut text = lines.join("\n");
    for (ino, first) in inodes {
        text = text.replace(&format!("links=#{ino} "), &format!("links={first} "));
    }
    text
}

fn walk(root: &Path, p: &Path, out: &mut Vec<String>, inodes: &mut HashMap<u64, String>) {
    let md = fs::symlink_metadata(p).unwrap();
    let rel = p.strip_prefix(root).unwrap().display().to_string();
    let ft = md.file_type();
    let kind = if ft.is_dir() {
        "dir"
    } else if ft.is_symlink() {
        "link"
    } else if ft.is_file() {
        "file"
    } else if ft.is_char_device() {
        "chr"
    } else if ft.is_block_device() {
        "blk"
    } else if ft.is_fifo() {
        "fifo"
    } else {
        "sock"
    };
    let mut xa: Vec<String> = xattr::list(p)
        .map(|names| {
            names
                .map(|n| {
                    let v = xattr::get(p, &n).unwrap().unwrap_or_default();
                    format!("{}={}", n.to_string_lossy(), hex::encode(v))
                })
                .collect()
        })
        .unwrap_or_default();
    xa.sort();
    let content = if ft.is_file() {
        hex::encode(Sha256::digest(fs::read(p).unwrap()))
    } else if ft.is_symlink() {
        fs::read_link(p).unwrap().display().to_string()
    } else {
        String::new()
    };
    let link_group = if ft.is_file() && md.nlink() > 1 {
        let first = inodes.entry(md.ino()).or_insert_with(|| rel.clone());
        if rel < *first {
            *first = rel.clone();
        }
        format!("#{}", md.ino())
    } else {
        String::new()
    };
    // A directory's size and mtime depend on how it was filled, not on what it holds.
    let (size, mtime) = if ft.is_dir() {
        (0, String::new())
    } else {
        (md.size(), format!("{}.{:09}", md.mtime(), md.mtime_nsec()))
    };
    out.push(format!(
        "{rel:?} {kind} {:o} {}:{} size={size} mtime={mtime} rdev={} {content} links={link_group} [{}]",
        md.mode() & 0o7777,
        md.uid(),
        md.gid(),
        md.rdev(),
        xa.join(" ")
    ));
    if ft.is_dir() {
        for e in fs::read_dir(p).unwrap() {
            walk(root, &e.unwrap().path(), out, inodes);
        }
    }
}

/// An empty ext4 file system mounted at `<dir>/<name>` (xattrs and ACLs as a target has them).
struct Fs {
    mnt: PathBuf,
    _guard: MountGuard,
    _disk: LoopDisk,
}

fn ext4(dir: &Path, name: &str) -> Fs {
    let disk = LoopDisk::new(256 << 20);
    sh(&format!("mkfs.ext4 -q -F {}", disk.dev.display()));
    let mnt = dir.join(name);
    fs::create_dir_all(&mnt).unwrap();
    sh(&format!("mount {} {}", disk.dev.display(), mnt.display()));
    // mkfs's lost+found is the target's, not the source's: the copy leaves it alone.
    fs::remove_dir(mnt.join("lost+found")).unwrap();
    Fs {
        _guard: MountGuard(mnt.clone()),
        mnt,
        _disk: disk,
    }
}

/// `deployer extract` of `source` into `target`.
fn extract(dir: &Path, source: &str, target: &Path) {
    let cfg = dir.join("extract.yaml");
    fs::write(&cfg, format!("sources: {{a: '{source}'}}\n")).unwrap();
    let o = testkit::deployer()
        .args(["extract", "-t"])
        .arg(target)
        .arg("-c")
        .arg(&cfg)
        .env_remove("CONFIG")
        .env_remove("CURTIN_REPORTSTACK")
        .env("DEPLOYER_CMDLINE_FILE", dir.join("none"))
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{source}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

fn rsync(src: &Path, dst: &Path) {
    sh(&format!(
        "cd {} && rsync -aXHAS --one-file-system {}/ .",
        dst.display(),
        src.display()
    ));
}

/// The source tree on ext4 (so that it can hold ACLs and capabilities like a real root).
fn source(dir: &Path) -> Fs {
    require_root();
    let src = ext4(dir, "src");
    rich_tree(&src.mnt);
    src
}

#[test]
fn cp_source_copies_like_rsync() {
    let dir = tempfile::tempdir_in("/var/tmp").unwrap();
    let src = source(dir.path());
    // A file system mounted inside the source is not crossed (rsync's --one-file-system).
    let inner = LoopDisk::new(16 << 20);
    sh(&format!("mkfs.ext4 -q -F {}", inner.dev.display()));
    sh(&format!(
        "mount {} {}/mnt",
        inner.dev.display(),
        src.mnt.display()
    ));
    let _inner = MountGuard(src.mnt.join("mnt"));
    fs::write(src.mnt.join("mnt/not-copied"), "x").unwrap();
    let ours = ext4(dir.path(), "ours");
    let theirs = ext4(dir.path(), "theirs");
    extract(
        dir.path(),
        &format!("cp://{}", src.mnt.display()),
        &ours.mnt,
    );
    rsync(&src.mnt, &theirs.mnt);
    let m = manifest(&ours.mnt);
    assert_eq!(m, manifest(&theirs.mnt));
    assert!(!ours.mnt.join("mnt/not-copied").exists());
    // The attributes are really there (not both copies empty alike).
    for needle in [
        "security.capability",
        "system.posix_acl_access",
        "\"dev/null\" chr",
        "4755",
        "1777",
    ] {
        assert!(m.contains(needle), "{needle} missing:\n{m}");
    }
    let s = fs::metadata(ours.mnt.join("var/sparse")).unwrap();
    assert!(s.blocks() * 512 < 1 << 20, "the hole was filled");
}

/// A squashfs of the source tree, and where it is mounted for the reference copy.
fn squashfs(dir: &Path, src: &Path, name: &str) -> PathBuf {
    let img = dir.join(name);
    sh(&format!(
        "mksquashfs {} {} -quiet -no-progress -comp gzip >/dev/null",
        src.display(),
        img.display()
    ));
    img
}

fn mounted_ro(img: &Path, at: &Path) -> MountGuard {
    fs::create_dir_all(at).unwrap();
    sh(&format!(
        "mount -o loop,ro {} {}",
        img.display(),
        at.display()
    ));
    MountGuard(at.to_path_buf())
}

#[test]
fn fsimage_and_squashfs_over_http_copy_like_rsync() {
    let dir = tempfile::tempdir_in("/var/tmp").unwrap();
    let src = source(dir.path());
    let img = squashfs(dir.path(), &src.mnt, "root.squashfs");
    let view = dir.path().join("view");
    let _v = mounted_ro(&img, &view);
    let theirs = ext4(dir.path(), "theirs");
    rsync(&view, &theirs.mnt);
    let want = manifest(&theirs.mnt);
    assert!(want.contains("security.capability"), "{want}");

    let ours = ext4(dir.path(), "ours");
    extract(dir.path(), &format!("fsimage:{}", img.display()), &ours.mnt);
    assert_eq!(manifest(&ours.mnt), want);

    let srv = Server::start();
    srv.serve_file("/images/root.squashfs", &img);
    let web = ext4(dir.path(), "web");
    extract(
        dir.path(),
        &format!("squashfs://{}", srv.url("/images/root.squashfs")),
        &web.mnt,
    );
    // The download went to the target's disk and is gone again.
    assert_eq!(manifest(&web.mnt), want);
}

#[test]
fn fsimage_layered_stacks_like_curtin() {
    let dir = tempfile::tempdir_in("/var/tmp").unwrap();
    let src = source(dir.path());
    let base = squashfs(dir.path(), &src.mnt, "minimal.squashfs");
    // The upper layer changes a file, adds one, and deletes one (an overlay whiteout).
    let upper = dir.path().join("upper");
    sh(&format!(
        "mkdir -p {u}/etc {u}/opt && echo 'ID=layered' > {u}/etc/os-release && echo new > {u}/opt/added \
         && mknod {u}/dangling c 0 0 && find {u} -exec touch -h -d '2011-01-01' {{}} +",
        u = upper.display()
    ));
    let top = squashfs(dir.path(), &upper, "minimal.standard.squashfs");
    let (lo, hi, merged) = (
        dir.path().join("lo"),
        dir.path().join("hi"),
        dir.path().join("merged"),
    );
    let _l = mounted_ro(&base, &lo);
    let _h = mounted_ro(&top, &hi);
    fs::create_dir_all(&merged).unwrap();
    sh(&format!(
        "mount -t overlay overlay -o ro,lowerdir={}:{} {}",
        hi.display(),
        lo.display(),
        merged.display()
    ));
    let _m = MountGuard(merged.clone());
    let theirs = ext4(dir.path(), "theirs");
    rsync(&merged, &theirs.mnt);
    let want = manifest(&theirs.mnt);
    assert!(
        want.contains("opt/added") && !want.contains("\"dangling\""),
        "{want}"
    );

    let ours = ext4(dir.path(), "ours");
    extract(
        dir.path(),
        &format!("fsimage-layered:{}", top.display()),
        &ours.mnt,
    );
    assert_eq!(manifest(&ours.mnt), want);
    assert_eq!(
        fs::read_to_string(ours.mnt.join("etc/os-release")).unwrap(),
        "ID=layered\n"
    );
}
