//! Each case runs with openat2 and with the component walk (kernels without openat2).

use super::*;
use std::os::unix::fs::{symlink, FileTypeExt, MetadataExt};

/// A target root and, beside it (outside), a host canary file and directory.
struct Fixture {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    outside: PathBuf,
}

impl Fixture {
    fn new() -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("target");
        let outside = tmp.path().join("host");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::create_dir_all(root.join("usr/share/zoneinfo/Etc")).unwrap();
        std::fs::write(root.join("usr/share/zoneinfo/Etc/UTC"), "target tz").unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("canary"), "host").unwrap();
        std::fs::set_permissions(outside.join("canary"), PermissionsExt::from_mode(0o644)).unwrap();
        Fixture {
            root,
            outside,
            _tmp: tmp,
        }
    }

    fn canary(&self) -> PathBuf {
        self.outside.join("canary")
    }

    /// The host canary is as it was: content, mode, and nothing new beside it.
    fn host_untouched(&self) {
        assert_eq!(std::fs::read_to_string(self.canary()).unwrap(), "host");
        let md = std::fs::metadata(self.canary()).unwrap();
        assert_eq!(md.mode() & 0o7777, 0o644);
        let names: Vec<_> = std::fs::read_dir(&self.outside)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![OsString::from("canary")]);
    }

    /// `../` enough times to climb from `depth` directories below the root to the host's `/`.
    fn up_to_host(&self, depth: usize) -> PathBuf {
        let levels = depth + self.root.components().count();
        let mut p = PathBuf::new();
        for _ in 0..levels {
            p.push("..");
        }
        p.join(self.canary().strip_prefix("/").unwrap())
    }
}

fn both(test: impl Fn(&Fixture, TargetRoot)) {
    for walk in [false, true] {
        let f = Fixture::new();
        let r = TargetRoot::open(&f.root).unwrap();
        test(&f, if walk { r.walking() } else { r });
    }
}

#[test]
fn absolute_and_relative_chains_resolve_inside_the_root() {
    both(|f, r| {
        // etc/localtime -> /usr/share/zoneinfo/UTC -> Etc/UTC (a real image's chain).
        symlink("/usr/share/zoneinfo/UTC", f.root.join("etc/localtime")).unwrap();
        symlink("Etc/UTC", f.root.join("usr/share/zoneinfo/UTC")).unwrap();
        assert_eq!(r.read_to_string("etc/localtime").unwrap(), "target tz");
        assert_eq!(r.read_to_string("/etc/localtime").unwrap(), "target tz");
        assert_eq!(
            r.real_path("etc/localtime").unwrap(),
            f.root
                .canonicalize()
                .unwrap()
                .join("usr/share/zoneinfo/Etc/UTC")
        );
        // The leaf is followed for writes too, as the target's own tools would.
        r.write_file("etc/localtime", b"new tz", 0o644, None)
            .unwrap();
        assert_eq!(
            std::fs::read_to_string(f.root.join("usr/share/zoneinfo/Etc/UTC")).unwrap(),
            "new tz"
        );
        assert!(std::fs::symlink_metadata(f.root.join("etc/localtime"))
            .unwrap()
            .file_type()
            .is_symlink());
    });
}

#[test]
fn absolute_link_to_a_host_file_is_re_rooted() {
    both(|f, r| {
        symlink(f.canary(), f.root.join("etc/fstab")).unwrap();
        // Dangling inside the root (the canary's path does not exist there): a write makes it
        // there, once its parent exists.
        assert!(r
            .write_file("etc/fstab", b"x", 0o600, Some((0, 0)))
            .is_err());
        r.create_dir_all(f.outside.strip_prefix("/").unwrap(), 0o755)
            .unwrap();
        r.write_file("etc/fstab", b"ours", 0o600, Some((0, 0)))
            .unwrap();
        let inside = f.root.join(f.canary().strip_prefix("/").unwrap());
        assert_eq!(std::fs::read_to_string(&inside).unwrap(), "ours");
        assert_eq!(std::fs::metadata(&inside).unwrap().mode() & 0o7777, 0o600);
        r.chmod("etc/fstab", 0o4777).unwrap();
        r.chown("etc/fstab", 1234, 5678).unwrap();
        assert_eq!(std::fs::metadata(&inside).unwrap().uid(), 1234);
        f.host_untouched();
    });
}

#[test]
fn dotdot_links_stop_at_the_root() {
    both(|f, r| {
        std::fs::create_dir_all(f.root.join("etc/cloud")).unwrap();
        symlink(f.up_to_host(2), f.root.join("etc/cloud/cloud.cfg.d")).unwrap();
        // `..` past the root stays at the root: the link names <root>/<canary path>.
        assert!(!r.exists("etc/cloud/cloud.cfg.d"));
        assert!(r
            .write_file("etc/cloud/cloud.cfg.d", b"secret", 0o600, None)
            .is_err());
        // A directory link climbing out: mkdir -p and writes below it stay inside.
        symlink("../../../../../../../../../..", f.root.join("etc/up")).unwrap();
        let rel = Path::new("etc/up").join(f.outside.strip_prefix("/").unwrap());
        r.write_file(rel.join("canary"), b"pwned", 0o777, None)
            .unwrap();
        assert_eq!(
            std::fs::read_to_string(f.root.join(f.canary().strip_prefix("/").unwrap())).unwrap(),
            "pwned"
        );
        f.host_untouched();
    });
}

#[test]
fn loops_are_errors() {
    both(|f, r| {
        symlink("b", f.root.join("etc/a")).unwrap();
        symlink("/etc/a", f.root.join("etc/b")).unwrap();
        let e = format!("{:#}", r.read_to_string("etc/a").unwrap_err());
        assert!(e.contains("symbolic links"), "{e}");
        assert!(r.write_file("etc/a", b"x", 0o644, None).is_err());
        assert!(r.create_dir_all("etc/a/sub", 0o755).is_err());
        // The links are still links.
        assert!(std::fs::symlink_metadata(f.root.join("etc/a"))
            .unwrap()
            .file_type()
            .is_symlink());
    });
}

#[test]
fn dangling_links_are_created_inside_and_block_mkdir() {
    both(|f, r| {
        std::fs::create_dir_all(f.root.join("var/lib")).unwrap();
        symlink("/var/lib/new.conf", f.root.join("etc/new.conf")).unwrap();
        r.write_file("etc/new.conf", b"made", 0o640, None).unwrap();
        assert_eq!(
            std::fs::read_to_string(f.root.join("var/lib/new.conf")).unwrap(),
            "made"
        );
        // mkdir -p does not make a dangling link's target (as mkdir -p).
        symlink("/nowhere", f.root.join("etc/dang")).unwrap();
        let e = format!("{:#}", r.create_dir_all("etc/dang/x", 0o755).unwrap_err());
        assert!(e.contains("/etc/dang is a dangling symlink"), "{e}");
        assert!(!f.root.join("nowhere").exists());
    });
}

#[test]
fn remove_and_rename_act_on_the_link_itself() {
    both(|f, r| {
        symlink(f.canary(), f.root.join("etc/resolv.conf")).unwrap();
        assert!(r
            .symlink_metadata("etc/resolv.conf")
            .unwrap()
            .file_type()
            .is_symlink());
        r.rename("etc/resolv.conf", "etc/resolv.saved").unwrap();
        assert_eq!(
            std::fs::read_link(f.root.join("etc/resolv.saved")).unwrap(),
            f.canary()
        );
        r.remove_file("etc/resolv.saved").unwrap();
        assert!(std::fs::symlink_metadata(f.root.join("etc/resolv.saved")).is_err());
        r.symlink("../run/resolv.conf", "etc/resolv.conf").unwrap();
        assert_eq!(
            r.read_link("etc/resolv.conf").unwrap(),
            Path::new("../run/resolv.conf")
        );
        assert_eq!(
            std::fs::read_link(f.root.join("etc/resolv.conf")).unwrap(),
            Path::new("../run/resolv.conf")
        );
        f.host_untouched();
    });
}

#[test]
fn beneath_refuses_links_out_of_the_tree() {
    for walk in [false, true] {
        let f = Fixture::new();
        let r = TargetRoot::open(&f.root).unwrap().beneath();
        let r = if walk { r.walking() } else { r };
        symlink(&f.outside, f.root.join("abs")).unwrap();
        symlink("../../../../../../..", f.root.join("etc/up")).unwrap();
        symlink("../usr/share", f.root.join("etc/share")).unwrap();
        for p in ["abs", "etc/up"] {
            let e = r.dir(p).unwrap_err();
            let io = e.downcast_ref::<io::Error>().unwrap();
            assert_eq!(io.raw_os_error(), Some(libc::EXDEV), "{p}: {e:#}");
        }
        assert!(r.dir("etc/share/zoneinfo").is_ok());
        assert!(r.write_file("abs/canary", b"x", 0o644, None).is_err());
        f.host_untouched();
    }
}

#[test]
fn mount_points_resolve_inside_the_root() {
    both(|f, r| {
        symlink(&f.outside, f.root.join("boot")).unwrap();
        // Dangling inside the root: an error, as `mkdir -p /boot/efi` in the target.
        assert!(r.mount_point("boot/efi").is_err());
        std::fs::create_dir_all(f.root.join(f.outside.strip_prefix("/").unwrap())).unwrap();
        let mp = r.mount_point("boot/efi").unwrap();
        let real = f.root.canonicalize().unwrap();
        assert_eq!(
            mp.path(),
            real.join(f.outside.strip_prefix("/").unwrap()).join("efi")
        );
        assert!(mp.path().starts_with(&real));
        assert_eq!(std::fs::read_link(mp.proc_path()).unwrap(), mp.path());
        if nix::unistd::geteuid().is_root() {
            // mount(2) onto the fd's magic link lands on the resolved directory.
            nix::mount::mount(
                Some("tmpfs"),
                &mp.proc_path(),
                Some("tmpfs"),
                nix::mount::MsFlags::empty(),
                None::<&str>,
            )
            .unwrap();
            let listed = crate::target::is_mountpoint(mp.path());
            nix::mount::umount2(mp.path(), nix::mount::MntFlags::empty()).unwrap();
            assert!(listed, "{} not in mountinfo", mp.path().display());
        }
        std::fs::write(f.root.join("etc/file"), "").unwrap();
        assert!(r.mount_point("etc/file").is_err());
        assert!(r.mount_point_file("etc/file").is_ok());
        f.host_untouched();
    });
}

#[test]
fn bad_paths_and_special_files_are_refused() {
    both(|f, r| {
        let e = format!(
            "{:#}",
            r.write_file("etc/../x", b"", 0o644, None).unwrap_err()
        );
        assert!(e.contains("'..'"), "{e}");
        nix::unistd::mkfifo(&f.root.join("etc/fifo"), Mode::from_bits_truncate(0o644)).unwrap();
        // Neither blocks on the FIFO nor writes into it.
        let e = format!(
            "{:#}",
            r.write_file("etc/fifo", b"x", 0o644, None).unwrap_err()
        );
        assert!(e.contains("not a regular file"), "{e}");
        assert!(r.read("etc/fifo").is_err());
        assert!(r.read_to_string_opt("etc/missing").is_none());
        let e = format!("{:#}", r.read_to_string("etc/missing").unwrap_err());
        assert!(e.contains("etc/missing"), "{e}");
    });
}

#[test]
fn modes_and_owner_are_set_on_the_file() {
    both(|f, r| {
        r.write_file("a/b/c.cfg", b"x", 0o4755, Some((12, 34)))
            .unwrap();
        let md = std::fs::metadata(f.root.join("a/b/c.cfg")).unwrap();
        assert_eq!((md.mode() & 0o7777, md.uid(), md.gid()), (0o4755, 12, 34));
        assert!(r.is_executable("a/b/c.cfg"));
        assert_eq!(
            std::fs::metadata(f.root.join("a/b")).unwrap().mode() & 0o777,
            0o755
        );
        // Rewriting truncates.
        r.write_file("a/b/c.cfg", b"", 0o600, None).unwrap();
        assert_eq!(std::fs::read(f.root.join("a/b/c.cfg")).unwrap(), b"");
        r.mknod("a/fifo", SFlag::S_IFIFO, 0o600, 0).unwrap();
        assert!(r.symlink_metadata("a/fifo").unwrap().file_type().is_fifo());
    });
}
