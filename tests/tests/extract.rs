//! The extract stage against GNU tar: the same tree, byte for byte and attribute for attribute,
//! and nothing ever written outside the target.

use std::path::{Path, PathBuf};

use testkit::{require_root, sh, LoopDisk};

/// A fresh ext4 on a loop disk mounted at a temp dir (xattrs and capabilities need a real fs).
struct Fs {
    _disk: LoopDisk,
    dir: tempfile::TempDir,
}

fn ext4(size: u64) -> Fs {
    let disk = LoopDisk::new(size);
    sh(&format!("mkfs.ext4 -q -F {}", disk.dev.display()));
    let dir = tempfile::tempdir_in(testkit::loopdev::scratch_root()).unwrap();
    sh(&format!(
        "mount {} {}",
        disk.dev.display(),
        dir.path().display()
    ));
    Fs { _disk: disk, dir }
}

/// Build the fixture tree and archive it with GNU tar the way images are built.
fn build_tarball(work: &Path) -> PathBuf {
    let src = work.join("src");
    let script = format!(
        r#"set -e
        mkdir -p {s}/usr/bin {s}/a/b/c/d/e {s}/dev {s}/var/spool {s}/acl
        printf 'ping' > {s}/usr/bin/ping
        chmod 0755 {s}/usr/bin/ping
        setcap cap_net_raw+ep {s}/usr/bin/ping
        printf 'su' > {s}/usr/bin/su && chown 0:0 {s}/usr/bin/su && chmod 4755 {s}/usr/bin/su
        printf 'data' > {s}/usr/bin/orig && ln {s}/usr/bin/orig {s}/usr/bin/hardlink
        mknod {s}/dev/null2 c 1 3 && chmod 0666 {s}/dev/null2
        mknod {s}/dev/blk b 7 200
        mkfifo {s}/var/spool/fifo && chmod 0620 {s}/var/spool/fifo
        truncate -s 64M {s}/sparse && printf 'middle' | dd of={s}/sparse bs=1 seek=33554432 conv=notrunc status=none
        printf 'end' >> {s}/sparse
        printf 'deep' > {s}/a/b/c/d/e/file
        ln -s ../../a/b/c/d/e/file {s}/usr/bin/deeplink
        ln -s /etc/hostname {s}/abs-link
        printf 'owned' > {s}/owned && chown 1234:5678 {s}/owned && chmod 0640 {s}/owned
        setfattr -n user.note -v hello {s}/owned
        printf 'acl' > {s}/acl/f && setfacl -m u:1000:rw {s}/acl/f && setfacl -d -m g:2000:rx {s}/acl
        touch -d '2020-01-02 03:04:05' {s}/owned {s}/a/b
        tar -C {s} --numeric-owner --xattrs --xattrs-include='*' --acls -Scpzf {w}/root.tgz .
        "#,
        s = src.display(),
        w = work.display()
    );
    sh(&script);
    work.join("root.tgz")
}

/// What a user compares: type, mode, owner, size, mtime, link target, device numbers, xattrs.
fn describe(root: &Path) -> String {
    let stat = sh(&format!(
        "cd {} && find . -path ./lost+found -prune -o -printf '%p %y %m %U:%G %s %T@ %l\\n' | sort",
        root.display()
    ));
    let rdev = sh(&format!(
        "cd {} && find . \\( -type c -o -type b \\) -exec stat -c '%n %t:%T' {{}} + | sort",
        root.display()
    ));
    let attrs = sh(&format!(
        "cd {} && find . -path ./lost+found -prune -o -print | sort | while read -r f; do getfattr -h -d -m - \"$f\" 2>/dev/null; done",
        root.display()
    ));
    let acl = sh(&format!(
        "cd {} && find . -path ./lost+found -prune -o ! -type l -print | sort | while read -r f; do getfacl -n -p \"$f\" 2>/dev/null; done",
        root.display()
    ));
    format!("{stat}\n{rdev}\n{attrs}\n{acl}")
}

fn config_for(work: &Path, uri: &str) -> PathBuf {
    let cfg = work.join("extract.yaml");
    std::fs::write(&cfg, format!("sources:\n  10_root: {uri}\n")).unwrap();
    cfg
}

fn run_extract(cfg: &Path, target: &Path) -> std::process::Output {
    testkit::deployer()
        .args(["extract", "-c"])
        .arg(cfg)
        .arg("--target-mount")
        .arg(target)
        .output()
        .unwrap()
}

/// `deployer extract`, which must succeed.
fn extract_ok(cfg: &Path, target: &Path) {
    let out = run_extract(cfg, target);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn tarball_extracts_identically_to_gnu_tar() {
    require_root();
    let work = tempfile::tempdir_in(testkit::loopdev::scratch_root()).unwrap();
    let tgz = build_tarball(work.path());
    let gnu = ext4(512 << 20);
    let ours = ext4(512 << 20);
    sh(&format!(
        "tar -C {} -Sxpzf {} --numeric-owner --xattrs --xattrs-include='*' --acls",
        gnu.dir.path().display(),
        tgz.display()
    ));
    let cfg = config_for(work.path(), &format!("file://{}", tgz.display()));
    extract_ok(&cfg, ours.dir.path());

    let (a, b) = (describe(gnu.dir.path()), describe(ours.dir.path()));
    assert_eq!(a, b, "GNU tar vs deployer");
    // Spot checks of what matters most, in case both were wrong the same way.
    assert!(b.contains("security.capability"), "{b}");
    assert!(b.contains("./usr/bin/su f 4755"), "{b}");
    assert!(b.contains("./var/spool/fifo p 620"), "{b}");
    assert!(b.contains("./dev/null2 1:3"), "{b}");
    assert!(b.contains("user:1000:rw-"), "{b}");
    let cap = sh(&format!(
        "getcap {}/usr/bin/ping",
        ours.dir.path().display()
    ));
    assert!(cap.contains("cap_net_raw=ep"), "{cap}");
    let ino = |p: &str| {
        sh(&format!(
            "stat -c %i {}/usr/bin/{p}",
            ours.dir.path().display()
        ))
    };
    assert_eq!(ino("orig"), ino("hardlink"));
    // The sparse file stays sparse (64 MiB apparent, a few KiB allocated).
    let blocks: u64 = sh(&format!("stat -c %b {}/sparse", ours.dir.path().display()))
        .trim()
        .parse()
        .unwrap();
    assert!(blocks < 1024, "sparse file has {blocks} blocks");
    assert_eq!(
        std::fs::read_to_string(ours.dir.path().join("usr/bin/deeplink")).unwrap(),
        "deep"
    );
}

#[test]
fn tarball_over_http_zstd_and_plain() {
    require_root();
    let work = tempfile::tempdir_in(testkit::loopdev::scratch_root()).unwrap();
    let src = work.path().join("src");
    sh(&format!(
        "mkdir -p {s}/etc && echo hi > {s}/etc/motd && tar -C {s} -cf {w}/r.tar . && zstd -q {w}/r.tar -o {w}/r.tar.zst",
        s = src.display(),
        w = work.path().display()
    ));
    let server = testkit::Server::start();
    server.serve_file("/r.tar.zst", work.path().join("r.tar.zst"));
    server.serve_file("/r.tar", work.path().join("r.tar"));
    for name in ["r.tar.zst", "r.tar"] {
        let t = tempfile::tempdir_in(work.path()).unwrap();
        let cfg = config_for(work.path(), &server.url(&format!("/{name}")));
        let out = run_extract(&cfg, t.path());
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            std::fs::read_to_string(t.path().join("etc/motd")).unwrap(),
            "hi\n"
        );
    }
}

/// Writes a tar with raw entries the way an attacker would (GNU tar refuses to create them).
fn evil_tar(path: &Path, entries: &[(&str, tar::EntryType, &str, &[u8])]) {
    let mut b = tar::Builder::new(std::fs::File::create(path).unwrap());
    for (name, ty, link, data) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(*ty);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_size(data.len() as u64);
        {
            let raw = h.as_old_mut();
            raw.name[..name.len()].copy_from_slice(name.as_bytes());
            raw.linkname[..link.len()].copy_from_slice(link.as_bytes());
        }
        h.set_cksum();
        b.append(&h, *data).unwrap();
    }
    b.finish().unwrap();
}

#[test]
fn traversal_and_symlink_escape_are_refused() {
    require_root();
    let work = tempfile::tempdir_in(testkit::loopdev::scratch_root()).unwrap();
    let outside = work.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    type Raw<'a> = (&'a str, tar::EntryType, String, &'a [u8]);
    let cases: Vec<(&str, Vec<Raw>, &str)> = vec![
        (
            "dotdot",
            vec![(
                "../outside/pwned",
                tar::EntryType::Regular,
                String::new(),
                b"x",
            )],
            "'..'",
        ),
        (
            "absolute",
            vec![("ABS", tar::EntryType::Regular, String::new(), b"x")],
            "absolute",
        ),
        (
            "symlink",
            vec![
                (
                    "link",
                    tar::EntryType::Symlink,
                    outside.display().to_string(),
                    b"",
                ),
                ("link/pwned", tar::EntryType::Regular, String::new(), b"x"),
            ],
            "out of the target",
        ),
        (
            "relsymlink",
            vec![
                ("d/", tar::EntryType::Directory, String::new(), b""),
                ("d/up", tar::EntryType::Symlink, "../../outside".into(), b""),
                ("d/up/pwned", tar::EntryType::Regular, String::new(), b"x"),
            ],
            "out of the target",
        ),
        (
            "hardlink",
            vec![("hl", tar::EntryType::Link, "../outside/secret".into(), b"")],
            "'..'",
        ),
    ];
    std::fs::write(outside.join("secret"), "s").unwrap();
    let abs_name = format!("{}/pwned", outside.display());
    for (name, entries, needle) in cases {
        let tarfile = work.path().join(format!("{name}.tar"));
        let entries: Vec<(&str, tar::EntryType, &str, &[u8])> = entries
            .iter()
            .map(|(n, t, l, d)| {
                let n: &str = if *n == "ABS" { &abs_name } else { n };
                (n, *t, l.as_str(), *d)
            })
            .collect();
        evil_tar(&tarfile, &entries);
        let target = work.path().join(format!("t-{name}"));
        std::fs::create_dir(&target).unwrap();
        let cfg = config_for(work.path(), &tarfile.display().to_string());
        let out = run_extract(&cfg, &target);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{name}: extract succeeded");
        assert!(err.contains(needle), "{name}: {err}");
        let listing: Vec<_> = std::fs::read_dir(&outside)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            listing,
            vec![std::ffi::OsString::from("secret")],
            "{name}: wrote outside"
        );
    }
}

#[test]
fn not_a_tarball_is_a_clear_error() {
    require_root();
    let work = tempfile::tempdir_in(testkit::loopdev::scratch_root()).unwrap();
    let f = work.path().join("x.zip");
    std::fs::write(&f, vec![b'P'; 4096]).unwrap();
    let cfg = config_for(work.path(), &f.display().to_string());
    let out = run_extract(&cfg, work.path());
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not a tar archive"), "{err}");
}

/// A tgz of 6 MiB of random data (so that it does not compress) and its sha256.
fn random_tgz(work: &Path) -> (PathBuf, String) {
    sh(&format!(
        "set -e; cd {w}; mkdir -p r/etc; head -c 6M /dev/urandom > r/blob; echo ok > r/etc/marker; \
         tar -C r -czf r.tgz .",
        w = work.display()
    ));
    let tgz = work.join("r.tgz");
    let sum = sh(&format!("sha256sum {}", tgz.display()));
    (tgz, sum.split_whitespace().next().unwrap().to_string())
}

fn typed_config(work: &Path, uri: &str, sha256: &str) -> PathBuf {
    let cfg = work.join("extract.yaml");
    std::fs::write(
        &cfg,
        format!("sources:\n  10_root: {{type: tgz, uri: '{uri}', sha256: {sha256}}}\n"),
    )
    .unwrap();
    cfg
}

#[test]
fn http_source_resumes_after_a_cut_and_is_verified() {
    require_root();
    let work = tempfile::tempdir_in(testkit::loopdev::scratch_root()).unwrap();
    let (tgz, sum) = random_tgz(work.path());
    let srv = testkit::Server::start();
    srv.serve_file("/r.tgz", &tgz);
    let len = std::fs::metadata(&tgz).unwrap().len();
    srv.fault("/r.tgz", testkit::Fault::CutAfter(len / 2));
    let target = work.path().join("target");
    std::fs::create_dir_all(&target).unwrap();
    let cfg = typed_config(work.path(), &srv.url("/r.tgz"), &sum);
    extract_ok(&cfg, &target);
    assert_eq!(
        std::fs::read(target.join("blob")).unwrap(),
        std::fs::read(work.path().join("r/blob")).unwrap()
    );
    assert_eq!(
        std::fs::read_to_string(target.join("etc/marker")).unwrap(),
        "ok\n"
    );
    // The cut was resumed with a Range request, not refetched from the start.
    let reqs = srv.requests();
    let ranged: Vec<_> = reqs
        .iter()
        .filter(|r| r.path == "/r.tgz" && r.header("range").is_some())
        .collect();
    assert!(!ranged.is_empty(), "no Range request after the cut");
}

#[test]
fn wrong_sha256_fails_with_the_checksum_error() {
    require_root();
    let work = tempfile::tempdir_in(testkit::loopdev::scratch_root()).unwrap();
    let (tgz, sum) = random_tgz(work.path());
    let target = work.path().join("target");
    std::fs::create_dir_all(&target).unwrap();
    // Not all digits: YAML 1.1 would read 000...0 as the number 0 (see sources' tests).
    let bad = sum.replace(|c: char| c != 'f', "f");
    let cfg = typed_config(work.path(), &format!("file://{}", tgz.display()), &bad);
    let out = run_extract(&cfg, &target);
    assert!(!out.status.success());
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "sha256 mismatch for file://{}: expected {bad}, got {sum}",
            tgz.display()
        )),
        "{err}"
    );

    // A declared size that is not the file's fails before anything is extracted.
    let fresh = work.path().join("fresh");
    std::fs::create_dir_all(&fresh).unwrap();
    std::fs::write(
        &cfg,
        format!(
            "sources:\n  10_root: {{type: tgz, uri: '{}', size: 1000}}\n",
            tgz.display()
        ),
    )
    .unwrap();
    let out = run_extract(&cfg, &fresh);
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not the declared size 1000"), "{err}");
    assert_eq!(std::fs::read_dir(&fresh).unwrap().count(), 0);
}

/// As curtin's extract: after the sources, `write_files` lands in the target (modes, owners,
/// encodings), over what the tarball had.
#[test]
fn write_files_after_the_sources() {
    require_root();
    let work = tempfile::tempdir_in(testkit::loopdev::scratch_root()).unwrap();
    let (tgz, _) = random_tgz(work.path());
    let target = work.path().join("target");
    std::fs::create_dir_all(&target).unwrap();
    let cfg = work.path().join("extract.yaml");
    std::fs::write(
        &cfg,
        format!(
            "sources:\n  10_root: {}\nwrite_files:\n  \
             a: {{path: /etc/marker, content: \"from config\\n\"}}\n  \
             b: {{path: /etc/secret/key, content: aGVsbG8=, encoding: b64, permissions: '0600', owner: '1234:5678'}}\n",
            tgz.display()
        ),
    )
    .unwrap();
    extract_ok(&cfg, &target);
    assert_eq!(
        std::fs::read_to_string(target.join("etc/marker")).unwrap(),
        "from config\n"
    );
    assert!(target.join("blob").exists());
    assert_eq!(
        std::fs::read(target.join("etc/secret/key")).unwrap(),
        b"hello"
    );
    assert_eq!(
        sh(&format!(
            "stat -c '%a %u:%g' {}/etc/secret/key",
            target.display()
        ))
        .trim(),
        "600 1234:5678"
    );
    assert_eq!(
        sh(&format!("stat -c '%a' {}/etc/marker", target.display())).trim(),
        "644"
    );

    // A path leaving the target fails the stage, naming the entry; nothing is written outside.
    std::fs::write(
        &cfg,
        format!(
            "sources:\n  10_root: {}\nwrite_files:\n  evil: {{path: ../../escaped, content: x}}\n",
            tgz.display()
        ),
    )
    .unwrap();
    let out = run_extract(&cfg, &target);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("write_files.evil"), "{err}");
    assert!(err.contains("leaves the target"), "{err}");
    assert!(!work.path().join("escaped").exists());
    assert!(!work.path().parent().unwrap().join("escaped").exists());
}

/// Issue #16 item 15: GNU tar 1.34 writes a FIFO with empty device fields; it extracts. Errors
/// name the entry they are about.
#[test]
fn gnu_tar_fifo_extracts_and_errors_name_the_entry() {
    require_root();
    let work = tempfile::tempdir_in(testkit::loopdev::scratch_root()).unwrap();
    let w = work.path().display();
    sh(&format!(
        "mkdir -p {w}/src/run && mkfifo -m 0620 {w}/src/run/initctl && tar -C {w}/src --format=gnu -cf {w}/fifo.tar ."
    ));
    let target = work.path().join("t");
    std::fs::create_dir(&target).unwrap();
    extract_ok(&config_for(work.path(), &format!("{w}/fifo.tar")), &target);
    let md = std::fs::symlink_metadata(target.join("run/initctl")).unwrap();
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    assert!(md.file_type().is_fifo());
    assert_eq!(md.permissions().mode() & 0o7777, 0o620);

    // A member below a regular file: the message names the member and what is in the way.
    evil_tar(
        &work.path().join("bad.tar"),
        &[
            ("etc", tar::EntryType::Regular, "", b"x"),
            ("etc/hosts", tar::EntryType::Regular, "", b"y"),
        ],
    );
    let t2 = work.path().join("t2");
    std::fs::create_dir(&t2).unwrap();
    let out = run_extract(&config_for(work.path(), &format!("{w}/bad.tar")), &t2);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("extracting \"etc/hosts\": etc exists and is not a directory"),
        "{err}"
    );
    // A corrupt header after two good ones: the message says after which entry.
    sh(&format!(
        "head -c 1024 {w}/fifo.tar > {w}/cut.tar && printf '%512s' | tr ' ' x >> {w}/cut.tar"
    ));
    let t3 = work.path().join("t3");
    std::fs::create_dir(&t3).unwrap();
    let out = run_extract(&config_for(work.path(), &format!("{w}/cut.tar")), &t3);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(
        err.contains("reading the tar entry after \"./run/\""),
        "{err}"
    );
}
