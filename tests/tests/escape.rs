//! Nothing escapes the target (issue #16, items 1-5): an image's symlinks (absolute, or climbing
//! with `../../..`) and a config's mount paths never make deployer change a host file. Each
//! case checks what a user would: a host canary file keeps its content and mode, nothing new
//! appears beside it, nothing stays mounted or attached, and the exit code and message.

use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Output;

use testkit::{require_root, sh};

const CANARY: &str = "host canary\n";

/// A host directory outside every target, holding `canary` (mode 0644) and a `passwd` with a
/// user only the host knows.
struct Host {
    dir: tempfile::TempDir,
}

impl Host {
    fn new() -> Host {
        let dir = tempfile::tempdir_in(testkit::loopdev::scratch_root()).unwrap();
        std::fs::write(dir.path().join("canary"), CANARY).unwrap();
        std::fs::set_permissions(dir.path().join("canary"), PermissionsExt::from_mode(0o644))
            .unwrap();
        std::fs::write(
            dir.path().join("passwd"),
            "hostonly:x:4242:4242::/:/bin/sh\n",
        )
        .unwrap();
        Host { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn canary(&self) -> PathBuf {
        self.path().join("canary")
    }

    /// The canary as it was, and nothing else written beside it.
    fn untouched(&self, case: &str) {
        assert_eq!(
            std::fs::read_to_string(self.canary()).unwrap(),
            CANARY,
            "{case}: canary content"
        );
        let md = std::fs::metadata(self.canary()).unwrap();
        assert_eq!(md.mode() & 0o7777, 0o644, "{case}: canary mode");
        assert_eq!((md.uid(), md.gid()), (0, 0), "{case}: canary owner");
        let mut names: Vec<_> = std::fs::read_dir(self.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["canary", "passwd"], "{case}: new files on the host");
    }

    /// Where `host_path` is when the target resolves it (a re-rooted absolute path).
    fn inside(target: &Path, host_path: &Path) -> PathBuf {
        target.join(host_path.strip_prefix("/").unwrap())
    }

    /// A relative link text that, placed in `dir` on the host, climbs to `/` and down to
    /// `host_path`: `../../..` enough times.
    fn climbing(dir: &Path, host_path: &Path) -> PathBuf {
        let depth = dir.canonicalize().unwrap().components().count() - 1;
        let mut p = PathBuf::new();
        for _ in 0..depth {
            p.push("..");
        }
        p.join(host_path.strip_prefix("/").unwrap())
    }
}

/// A host canary and a work dir with a target in it (`target/etc` for a stage run alone; an
/// install wants it empty).
fn case(etc: bool) -> (Host, tempfile::TempDir, PathBuf) {
    let work = tempfile::tempdir_in(testkit::loopdev::scratch_root()).unwrap();
    let target = work.path().join("target");
    std::fs::create_dir_all(if etc {
        target.join("etc")
    } else {
        target.clone()
    })
    .unwrap();
    (Host::new(), work, target)
}

/// `deployer install` with `cfg` written to the work dir.
fn install(w: &Path, cfg: &str) -> Output {
    let p = w.join("install.yaml");
    std::fs::write(&p, cfg).unwrap();
    deployer(&["install", "-c", p.to_str().unwrap()])
}

fn deployer(args: &[&str]) -> Output {
    testkit::deployer()
        .args(args)
        .env_remove("TARGET_MOUNT_POINT")
        .env_remove("CONFIG")
        .env_remove("OUTPUT_FSTAB")
        .env_remove("CURTIN_REPORTSTACK")
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn extract(work: &Path, target: &Path, cfg: &str) -> Output {
    let c = work.join("extract.yaml");
    std::fs::write(&c, cfg).unwrap();
    deployer(&[
        "extract",
        "-c",
        c.to_str().unwrap(),
        "--target-mount",
        target.to_str().unwrap(),
    ])
}

/// An appended archive (GNU tar `-r`) in `w/a.tar`: a directory `etc/d` mode 4777, then a
/// symlink `etc/d` to the host canary (absolute, or climbing from `target/etc`). The link text.
fn dir_then_link_archive(w: &Path, target: &Path, host: &Host, absolute: bool) -> PathBuf {
    std::fs::create_dir_all(w.join("s1/etc/d")).unwrap();
    std::fs::set_permissions(w.join("s1/etc/d"), PermissionsExt::from_mode(0o4777)).unwrap();
    std::fs::create_dir_all(w.join("s2/etc")).unwrap();
    let link = if absolute {
        host.canary()
    } else {
        Host::climbing(&target.join("etc"), &host.canary())
    };
    symlink(&link, w.join("s2/etc/d")).unwrap();
    sh(&format!(
        "cd {w} && tar -C s1 --format=gnu -cf a.tar . && tar -C s2 --format=gnu -rf a.tar ./etc/d",
        w = w.display()
    ));
    link
}

/// Item 1: the deferred directory-mode pass must not chmod what a later symlink points to.
#[test]
fn extract_directory_mode_pass_never_follows_a_later_symlink() {
    require_root();
    for absolute in [true, false] {
        let (host, work, target) = case(true);
        let w = work.path();
        let link = dir_then_link_archive(w, &target, &host, absolute);
        let out = extract(
            w,
            &target,
            &format!("sources: {{10_root: {}/a.tar}}\n", w.display()),
        );
        let err = stderr(&out);
        let case = format!("absolute={absolute}");
        host.untouched(&case);
        // GNU tar fails such an archive too ("Directory renamed before its status could be
        // extracted"): a source error naming the entry.
        assert_eq!(out.status.code(), Some(4), "{case}: {err}");
        assert!(
            err.contains("\"etc/d\"") && err.contains("replaced"),
            "{case}: {err}"
        );
        assert_eq!(std::fs::read_link(target.join("etc/d")).unwrap(), link);
    }
}

/// Item 16: in an install, a hostile archive is a source error (exit 4, not a hook's 6), and
/// the failure is printed once at the end (curtin's line), not again by `deployer: error:`.
#[test]
fn hostile_archive_in_an_install_is_a_source_error_printed_once() {
    require_root();
    let (host, work, target) = case(false);
    let w = work.path();
    dir_then_link_archive(w, &target, &host, true);
    let out = install(
        w,
        &format!(
            "stages: [extract]\nsources: {{10_root: {w}/a.tar}}\ninstall: {{target: {t}, log_file: ''}}\n",
            w = w.display(),
            t = target.display()
        ),
    );
    let err = stderr(&out);
    host.untouched("install");
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert_eq!(
        err.matches("Installation failed with exception").count(),
        1,
        "{err}"
    );
    assert!(!err.contains("deployer: error:"), "{err}");
}

/// Item 2: the image's `etc/fstab` is a symlink to a host file; the fstab merge after extract
/// writes where the link leads inside the target.
#[test]
fn extract_fstab_merge_writes_through_the_images_link_inside_the_target() {
    require_root();
    for variant in ["absolute", "relative"] {
        let (host, work, target) = case(true);
        let w = work.path();
        // What block-meta left in the target.
        std::fs::write(
            target.join("etc/fstab"),
            "# / was on /dev/vda1 during curtin installation\nUUID=abc / ext4 defaults 0 1\n",
        )
        .unwrap();
        let img = w.join("img");
        std::fs::create_dir_all(img.join("etc")).unwrap();
        // The image has the link's directory, so that the target's own view is complete.
        std::fs::create_dir_all(Host::inside(&img, host.path())).unwrap();
        let link = match variant {
            "absolute" => host.canary(),
            _ => Host::climbing(&target.join("etc"), &host.canary()),
        };
        symlink(&link, img.join("etc/fstab")).unwrap();
        sh(&format!(
            "tar -C {} --format=gnu -cf {}/img.tar .",
            img.display(),
            w.display()
        ));
        let out = extract(
            w,
            &target,
            &format!("sources: {{10_root: {}/img.tar}}\n", w.display()),
        );
        host.untouched(variant);
        assert!(out.status.success(), "{variant}: {}", stderr(&out));
        let ours = std::fs::read_to_string(Host::inside(&target, &host.canary())).unwrap();
        assert!(
            ours.contains("UUID=abc / ext4 defaults 0 1"),
            "{variant}: {ours}"
        );
        assert_eq!(std::fs::read_link(target.join("etc/fstab")).unwrap(), link);
    }
}

/// Item 3: write_files into a leaf symlink (`/etc/localtime`, absolute in real images) and
/// below a linked parent directory; the owner lookup reads the target's passwd, not the host's.
#[test]
fn write_files_follow_the_images_links_inside_the_target() {
    require_root();
    let (host, work, target) = case(true);
    let w = work.path();
    std::fs::create_dir_all(Host::inside(&target, host.path())).unwrap();
    symlink(host.canary(), target.join("etc/localtime")).unwrap();
    symlink(
        Host::climbing(&target.join("etc"), host.path()),
        target.join("etc/cfg"),
    )
    .unwrap();
    let cfg = "write_files:
  a: {path: /etc/localtime, content: 'UTC', permissions: '04777'}
  b: {path: /etc/cfg/new.cfg, content: 'new', permissions: '0600'}
";
    let out = extract(w, &target, cfg);
    host.untouched("write_files");
    assert!(out.status.success(), "{}", stderr(&out));
    let tz = Host::inside(&target, &host.canary());
    assert_eq!(std::fs::read_to_string(&tz).unwrap(), "UTC");
    assert_eq!(std::fs::metadata(&tz).unwrap().mode() & 0o7777, 0o4777);
    let new = Host::inside(&target, &host.path().join("new.cfg"));
    assert_eq!(std::fs::read_to_string(&new).unwrap(), "new");

    // The target's /etc/passwd is a link to the host's passwd: the lookup stays in the target.
    symlink(host.path().join("passwd"), target.join("etc/passwd")).unwrap();
    let cfg = "write_files:\n  c: {path: /etc/owned, content: 'x', owner: 'hostonly:hostonly'}\n";
    let out = extract(w, &target, cfg);
    host.untouched("owner lookup");
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains(
            "write_files.c (/etc/owned): owner \"hostonly\" is not in the target's /etc/passwd"
        ),
        "{err}"
    );
    assert!(!target.join("etc/owned").exists());
}

/// Is anything mounted at or below `dir`?
fn mounted_under(dir: &Path) -> Vec<String> {
    let d = dir.canonicalize().unwrap().display().to_string();
    std::fs::read_to_string("/proc/self/mounts")
        .unwrap()
        .lines()
        .filter_map(|l| l.split(' ').nth(1))
        .filter(|m| *m == d || m.starts_with(&format!("{d}/")))
        .map(str::to_string)
        .collect()
}

fn storage_cfg(dir: &Path, name: &str, mounts: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(
        &p,
        format!(
            "install: {{log_file: ''}}
stages: [partitioning]
storage:
  version: 1
  config:
  - {{id: d1, type: disk, ptable: gpt, path: /dev/null}}
  - {{id: p1, type: partition, device: d1, size: 20M, number: 1}}
  - {{id: p2, type: partition, device: d1, size: 20M, number: 2}}
  - {{id: f1, type: format, volume: p1, fstype: ext4}}
  - {{id: f2, type: format, volume: p2, fstype: ext4}}
{mounts}"
        ),
    )
    .unwrap();
    p
}

/// Item 5: a mount path with `..` components, or two mounts at `/`, fail validation naming
/// the items; an install onto a file with such a config mounts nothing and leaves no loop
/// device behind.
#[test]
fn mount_paths_are_validated_and_nothing_is_mounted_outside() {
    require_root();
    let host = Host::new();
    let work = tempfile::tempdir_in(testkit::loopdev::scratch_root()).unwrap();
    let w = work.path();
    let escape = format!("/../../../../../..{}", host.path().display());
    let cfg = storage_cfg(
        w,
        "dotdot.yaml",
        &format!(
            "  - {{id: m1, type: mount, device: f1, path: /}}\n  - {{id: m2, type: mount, device: f2, path: '{escape}'}}\n"
        ),
    );
    let out = deployer(&["validate", "-c", cfg.to_str().unwrap()]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("storage.config[6] (mount id=m2): path") && err.contains("'..' component"),
        "{err}"
    );
    let two = storage_cfg(
        w,
        "two-roots.yaml",
        "  - {id: m1, type: mount, device: f1, path: /}\n  - {id: m2, type: mount, device: f2, path: /}\n",
    );
    let out = deployer(&["validate", "-c", two.to_str().unwrap()]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(
            "storage.config[6] (mount id=m2) mounts at /, as storage.config[5] (mount id=m1) does"
        ),
        "{err}"
    );

    // The install: refused before the disk is touched; nothing mounted, nothing attached.
    let img = w.join("disk.img");
    let out = deployer(&[
        "install",
        "-c",
        cfg.to_str().unwrap(),
        "--target",
        img.to_str().unwrap(),
        "--size",
        "64M",
    ]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("'..' component"), "{err}");
    assert_eq!(mounted_under(host.path()), Vec::<String>::new());
    let attached = sh("losetup -a");
    assert!(
        !attached.contains(img.to_str().unwrap()),
        "loop device left attached: {attached}"
    );
    host.untouched("mount path");
}

/// Item 4 (the install log): the target's `/root` is a link to a host directory (made by a
/// stage, as an image would bring it); the log copied at the end lands inside the target.
#[test]
fn install_log_is_saved_inside_the_target() {
    require_root();
    let (host, work, target) = case(false);
    let w = work.path();
    let inside = Host::inside(&target, host.path());
    let out = install(
        w,
        &format!(
            "stages: [early]
install: {{target: {t}, log_file: {w}/install.log}}
early_commands:
  10: mkdir -p {t}/etc {inside} && ln -s {h} {t}/root
",
            t = target.display(),
            w = w.display(),
            h = host.path().display(),
            inside = inside.display(),
        ),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    host.untouched("install log");
    let saved = inside.join("curtin-install.log");
    assert!(std::fs::read_to_string(&saved)
        .unwrap()
        .contains("Installation finished"));
    assert_eq!(std::fs::metadata(&saved).unwrap().mode() & 0o7777, 0o400);
}
