//! HTTP as a fleet client: resumes that prove they continue the same object (`If-Range`,
//! `Content-Range`), restarts from byte 0 when the server answers with another object (a 200
//! to a Range request, a replaced object, another length), `Retry-After`, and mirrors. Each
//! test checks the bytes on the disk (or in the target) and the requests the server saw.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use testkit::fixtures::build_disk;
use testkit::{require_root, sh, Fault, LoopDisk, Server};

const MIB: u64 = 1 << 20;
/// What a resume asks for again before the next byte (deployer's `source::http::OVERLAP`).
const OVERLAP: u64 = 64 << 10;

/// Disk images: `a` and `b` of 16 MiB (the object before and after it was replaced on the
/// server), `c` of 12 MiB (a replacement of another length); raw and gzipped. Cached under
/// target/.
struct Fixtures {
    dir: PathBuf,
}

fn fixtures() -> &'static Fixtures {
    static F: OnceLock<Fixtures> = OnceLock::new();
    F.get_or_init(|| {
        let dir = testkit::target_dir().join("http-fixtures-v1");
        if !dir.join("done").exists() {
            let tmp =
                testkit::target_dir().join(format!("http-fixtures-tmp-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&tmp);
            for (v, mib) in [("a", 16), ("b", 16), ("c", 12)] {
                let d = tmp.join(v);
                std::fs::create_dir_all(&d).unwrap();
                build_disk(&d, "disk.img", mib, "ext4");
                sh(&format!("cd {} && gzip -k disk.img", d.display()));
            }
            sh(&format!("touch {}/done", tmp.display()));
            let _ = std::fs::rename(&tmp, &dir);
            let _ = std::fs::remove_dir_all(&tmp);
        }
        Fixtures { dir }
    })
}

impl Fixtures {
    /// `a` or `b`, `disk.img` or `disk.img.gz`.
    fn path(&self, v: &str, name: &str) -> PathBuf {
        self.dir.join(v).join(name)
    }
    fn bytes(&self, v: &str, name: &str) -> Vec<u8> {
        std::fs::read(self.path(v, name)).unwrap()
    }
    fn len(&self, v: &str, name: &str) -> u64 {
        std::fs::metadata(self.path(v, name)).unwrap().len()
    }
}

fn sha256(p: &Path) -> String {
    let out = sh(&format!("sha256sum {}", p.display()));
    out.split_whitespace().next().unwrap().to_string()
}

struct Run {
    code: i32,
    stderr: String,
}

fn write_image(args: &[&str]) -> Run {
    let out = testkit::deployer()
        .arg("write-image")
        .args(args)
        .args(["--no-grow", "--json"])
        .env("RUST_LOG", "info")
        .output()
        .expect("run deployer");
    Run {
        code: out.status.code().unwrap_or(-1),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn ok(r: &Run) {
    assert_eq!(r.code, 0, "write-image failed:\n{}", r.stderr);
}

fn dev(d: &LoopDisk) -> &str {
    d.dev.to_str().unwrap()
}

/// The disk holds exactly `image` at its start.
fn assert_image_on(d: &LoopDisk, image: &[u8]) {
    let got = d.read_at(0, image.len());
    if let Some(i) = got.iter().zip(image).position(|(a, b)| a != b) {
        panic!("the disk differs from the image at byte {i}");
    }
}

/// `write-image SOURCE EXTRA...` onto a fresh disk: it must succeed and leave `image` on it.
fn deploys(source: &str, extra: &[&str], image: &[u8]) -> Run {
    let d = LoopDisk::new(32 * MIB);
    let mut args = vec![source, dev(&d)];
    args.extend_from_slice(extra);
    let r = write_image(&args);
    ok(&r);
    assert_image_on(&d, image);
    r
}

/// The run's log says `needle`.
fn says(r: &Run, needle: &str) {
    assert!(
        r.stderr.contains(needle),
        "{needle:?} not in:\n{}",
        r.stderr
    );
}

/// (status, Range, If-Range) of every request to `path`, in order.
fn seen(srv: &Server, path: &str) -> Vec<(u16, Option<String>, Option<String>)> {
    srv.requests()
        .iter()
        .filter(|r| r.path == path)
        .map(|r| {
            (
                r.status,
                r.header("range").map(String::from),
                r.header("if-range").map(String::from),
            )
        })
        .collect()
}

fn statuses(srv: &Server, path: &str) -> Vec<u16> {
    seen(srv, path).iter().map(|s| s.0).collect()
}

/// The first byte a resume asked for (`bytes=N-`).
fn range_start(range: &Option<String>) -> u64 {
    let r = range.as_deref().expect("a Range header");
    r.trim_start_matches("bytes=")
        .trim_end_matches('-')
        .parse()
        .unwrap()
}

/// A server with fixture `v`'s `name` at `path`, and these faults queued for it.
fn serving(v: &str, name: &str, path: &str, faults: Vec<Fault>) -> Server {
    let srv = Server::start();
    srv.serve_file(path, fixtures().path(v, name));
    for f in faults {
        srv.fault(path, f);
    }
    srv
}

#[test]
fn a_reset_is_resumed_with_if_range_and_the_same_object() {
    require_root();
    let fx = fixtures();
    let len = fx.len("a", "disk.img.gz");
    let srv = serving(
        "a",
        "disk.img.gz",
        "/img.gz",
        vec![Fault::ResetAfter(len / 3)],
    );
    let sum = sha256(&fx.path("a", "disk.img.gz"));
    let src = format!("dd-gz:{}", srv.url("/img.gz"));
    deploys(&src, &["--sha256", &sum], &fx.bytes("a", "disk.img"));
    let s = seen(&srv, "/img.gz");
    assert_eq!(s.len(), 2, "{s:?}");
    assert_eq!((s[0].0, &s[0].1), (200, &None));
    // The resume names the object it continues, and nothing was fetched twice.
    assert_eq!(s[1].0, 206);
    assert_eq!(s[1].2, srv.etag("/img.gz"));
    assert!(range_start(&s[1].1) <= len / 3 - OVERLAP);
    let sent: u64 = srv.requests().iter().map(|r| r.sent).sum();
    assert!(sent <= len + len / 3, "{sent} bytes sent for {len}");
}

#[test]
fn a_200_to_a_resume_starts_over_from_byte_zero() {
    require_root();
    let fx = fixtures();
    let len = fx.len("a", "disk.img.gz");
    // A proxy that ignores Range: the resume gets the whole object again.
    let faults = vec![Fault::CutAfter(len / 2), Fault::IgnoreRange];
    let srv = serving("a", "disk.img.gz", "/img.gz", faults);
    let src = format!("dd-gz:{}", srv.url("/img.gz"));
    let r = deploys(&src, &[], &fx.bytes("a", "disk.img"));
    says(&r, "starting over from byte 0");
    let s = seen(&srv, "/img.gz");
    // The 200 is the new pass's stream: no third request.
    assert_eq!(s.len(), 2, "{s:?}");
    assert_eq!((s[1].0, range_start(&s[1].1)), (200, len / 2 - OVERLAP));
}

#[test]
fn an_object_replaced_mid_download_is_written_whole_from_the_new_one() {
    require_root();
    let fx = fixtures();
    let len = fx.len("a", "disk.img.gz");
    let new = Arc::new(fx.bytes("b", "disk.img.gz"));
    let srv = serving(
        "a",
        "disk.img.gz",
        "/img.gz",
        vec![Fault::ReplaceAfter(len / 2, new)],
    );
    let old = srv.etag("/img.gz").unwrap();
    let sum = sha256(&fx.path("b", "disk.img.gz"));
    let src = format!("dd-gz:{}", srv.url("/img.gz"));
    deploys(&src, &["--sha256", &sum], &fx.bytes("b", "disk.img"));
    let s = seen(&srv, "/img.gz");
    assert_eq!(s.len(), 2, "{s:?}");
    // The resume carried the old ETag; the server answered with the whole new object.
    assert_eq!((s[1].0, s[1].2.as_deref()), (200, Some(old.as_str())));
}

#[test]
fn an_image_file_target_starts_over_empty() {
    require_root();
    let fx = fixtures();
    // Written into a new file, whose holes read as zeros: starting over must not keep what the
    // first pass wrote where the new image has zeros.
    let c = fx.bytes("c", "disk.img");
    let len = fx.len("a", "disk.img");
    let faults = vec![Fault::ReplaceAfter(len - MIB, Arc::new(c.clone()))];
    let srv = serving("a", "disk.img", "/img", faults);
    let dir = tempfile::tempdir_in(testkit::loopdev::scratch_root()).unwrap();
    let out = dir.path().join("out.img");
    let r = write_image(&[
        &format!("dd-raw:{}", srv.url("/img")),
        out.to_str().unwrap(),
    ]);
    ok(&r);
    says(&r, "starting over from byte 0");
    assert!(
        std::fs::read(&out).unwrap() == c,
        "the file is not the new image"
    );
}

#[test]
fn without_validators_another_length_or_a_416_starts_over() {
    require_root();
    let fx = fixtures();
    // A 16 MiB raw image cut, then replaced by a 12 MiB one. The server sends no ETag or
    // Last-Modified, so the resume cannot carry If-Range: the length tells.
    let short = Arc::new(fx.bytes("c", "disk.img"));
    for (cut, why) in [(8 * MIB, "length"), (14 * MIB, "past the end")] {
        let srv = serving(
            "b",
            "disk.img",
            "/img",
            vec![Fault::ReplaceAfter(cut, short.clone())],
        );
        srv.set_validators("/img", None, None);
        let r = deploys(&format!("dd-raw:{}", srv.url("/img")), &[], &short);
        says(&r, why);
        let s = seen(&srv, "/img");
        let expect = if cut < 12 * MIB { 206 } else { 416 };
        assert_eq!(statuses(&srv, "/img"), [200, expect, 200], "{s:?}");
        assert_eq!((&s[1].2, &s[2].1), (&None, &None));
    }
}

#[test]
fn a_body_that_lost_bytes_in_its_middle_is_caught_at_the_resume() {
    require_root();
    let fx = fixtures();
    let len = fx.len("a", "disk.img");
    // 300 KiB missing after 4 MiB, the rest sent shifted, the total short: what nginx's slice
    // module sends when its upstream fails inside a slice.
    let srv = serving(
        "a",
        "disk.img",
        "/img",
        vec![Fault::Hole(4 * MIB, 300 << 10)],
    );
    let r = deploys(
        &format!("dd-raw:{}", srv.url("/img")),
        &[],
        &fx.bytes("a", "disk.img"),
    );
    says(&r, "differ from those received before");
    assert_eq!(statuses(&srv, "/img"), [200, 206, 200]);
    // The resume asked again for the overlap before the byte it needed.
    let s = seen(&srv, "/img");
    assert_eq!(range_start(&s[1].1), len - (300 << 10) - OVERLAP);
}

#[test]
fn retry_after_is_waited_out() {
    require_root();
    let fx = fixtures();
    let len = fx.len("a", "disk.img.gz");
    let faults = vec![
        Fault::Unavailable(2),
        Fault::CutAfter(len / 2),
        Fault::Unavailable(1),
    ];
    let srv = serving("a", "disk.img.gz", "/img.gz", faults);
    let src = format!("dd-gz:{}", srv.url("/img.gz"));
    deploys(&src, &[], &fx.bytes("a", "disk.img"));
    assert_eq!(statuses(&srv, "/img.gz"), [503, 200, 503, 206]);
    let reqs = srv.requests();
    assert!(reqs[1].at - reqs[0].at >= Duration::from_secs(2));
    assert!(reqs[3].at - reqs[2].at >= Duration::from_secs(1));
}

#[test]
fn a_mirror_with_the_same_object_continues_at_the_same_byte() {
    require_root();
    let fx = fixtures();
    let len = fx.len("a", "disk.img.gz");
    // Half, then a failure no retry can fix.
    let faults = vec![Fault::CutAfter(len / 2), Fault::Status(410)];
    let primary = serving("a", "disk.img.gz", "/img.gz", faults);
    let mirror = serving("a", "disk.img.gz", "/img.gz", vec![]);
    let src = format!("dd-gz:{}", primary.url("/img.gz"));
    let m_url = mirror.url("/img.gz");
    deploys(&src, &["--mirror", &m_url], &fx.bytes("a", "disk.img"));
    let m = seen(&mirror, "/img.gz");
    assert_eq!(m.len(), 1, "{m:?}");
    assert_eq!((m[0].0, range_start(&m[0].1)), (206, len / 2 - OVERLAP));
    assert_eq!(m[0].2, primary.etag("/img.gz"));
    // Nothing fetched twice but the overlap that proves the mirror's bytes line up.
    assert_eq!(
        primary.body_bytes_sent() + mirror.body_bytes_sent(),
        len + OVERLAP
    );
}

#[test]
fn a_mirror_with_another_copy_starts_over_and_sha256_decides() {
    require_root();
    let fx = fixtures();
    let len = fx.len("a", "disk.img");
    let faults = || vec![Fault::CutAfter(len / 2), Fault::Status(404)];
    // Another ETag: the mirror answers the If-Range with its whole object.
    let primary = serving("a", "disk.img", "/img", faults());
    let mirror = serving("a", "disk.img", "/img", vec![]);
    mirror.set_validators("/img", Some("\"elsewhere\""), None);
    let src = format!("dd-raw:{}", primary.url("/img"));
    deploys(
        &src,
        &["--mirror", &mirror.url("/img")],
        &fx.bytes("a", "disk.img"),
    );
    assert_eq!(statuses(&mirror, "/img"), [200]);

    // A mirror that claims the same object (same ETag, same length) but holds other bytes:
    // whether the overlap shows it or not, the sha256 refuses the result.
    let primary = serving("a", "disk.img", "/img", faults());
    let mirror = serving("b", "disk.img", "/img", vec![]);
    mirror.set_validators("/img", primary.etag("/img").as_deref(), None);
    let d = LoopDisk::new(32 * MIB);
    let r = write_image(&[
        &format!("dd-raw:{}", primary.url("/img")),
        dev(&d),
        "--mirror",
        &mirror.url("/img"),
        "--sha256",
        &sha256(&fx.path("a", "disk.img")),
    ]);
    assert_eq!(r.code, 4, "{}", r.stderr);
    says(&r, "sha256 mismatch");
    assert!(d.read_at(0, MIB as usize).iter().all(|&b| b == 0));
}

#[test]
fn every_mirror_failing_is_one_error_naming_each() {
    require_root();
    let fx = fixtures();
    let (primary, mirror) = (Server::start(), Server::start());
    // The primary 404s at once: the mirror is asked from byte 0 and serves it.
    mirror.serve_file("/other", fx.path("a", "disk.img"));
    let src = format!("dd-raw:{}", primary.url("/missing"));
    deploys(
        &src,
        &["--mirror", &mirror.url("/other")],
        &fx.bytes("a", "disk.img"),
    );
    assert_eq!(seen(&mirror, "/other")[0].1, None);
    let d = LoopDisk::new(32 * MIB);
    let r = write_image(&[&src, dev(&d), "--mirror", &mirror.url("/gone")]);
    assert_eq!(r.code, 4, "{}", r.stderr);
    says(&r, "every mirror failed");
    says(&r, &format!("{}: HTTP 404", primary.url("/missing")));
    says(&r, &format!("{}: HTTP 404", mirror.url("/gone")));
    // Nothing was written.
    assert!(d.read_at(0, MIB as usize).iter().all(|&b| b == 0));
    let r = write_image(&[&primary.url("/img"), dev(&d), "--mirror", "ftp://x/img"]);
    assert_eq!(r.code, 4, "{}", r.stderr);
    says(&r, "not an http:// or https:// URL");
}

fn extract(cfg: &Path, target: &Path) -> std::process::Output {
    testkit::deployer()
        .args(["extract", "-c"])
        .arg(cfg)
        .arg("--target-mount")
        .arg(target)
        .env("RUST_LOG", "info")
        .output()
        .unwrap()
}

#[test]
fn a_tarball_with_mirrors_is_extracted_again_when_replaced() {
    require_root();
    let work = tempfile::tempdir_in(testkit::loopdev::scratch_root()).unwrap();
    let w = work.path();
    sh(&format!(
        "set -e; cd {w}; for v in a b; do mkdir -p $v/etc; head -c 4M /dev/urandom > $v/blob; \
         echo $v > $v/etc/version; done; touch a/only-in-a; \
         tar -C a -czf a.tgz .; tar -C b -czf b.tgz .",
        w = w.display()
    ));
    let (primary, mirror) = (Server::start(), Server::start());
    let b = std::fs::read(w.join("b.tgz")).unwrap();
    let len = std::fs::metadata(w.join("a.tgz")).unwrap().len();
    primary.serve_file("/root.tgz", w.join("a.tgz"));
    mirror.serve_file("/root.tgz", w.join("a.tgz"));
    // The primary is gone after half; the mirror replaced its copy under the download.
    primary.fault("/root.tgz", Fault::CutAfter(len / 2));
    primary.fault("/root.tgz", Fault::Status(404));
    mirror.fault("/root.tgz", Fault::ReplaceAfter(len / 8, Arc::new(b)));
    let cfg = w.join("c.yaml");
    std::fs::write(
        &cfg,
        format!(
            "sources:\n  10_root:\n    type: tgz\n    uri: '{}'\n    mirrors: ['{}']\n    sha256: {}\n",
            primary.url("/root.tgz"),
            mirror.url("/root.tgz"),
            sha256(&w.join("b.tgz"))
        ),
    )
    .unwrap();
    let target = w.join("target");
    std::fs::create_dir_all(&target).unwrap();
    let out = extract(&cfg, &target);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("starting over from byte 0"), "{err}");
    assert_eq!(
        std::fs::read_to_string(target.join("etc/version")).unwrap(),
        "b\n"
    );
    assert_eq!(
        std::fs::read(target.join("blob")).unwrap(),
        std::fs::read(w.join("b/blob")).unwrap()
    );
    let m = seen(&mirror, "/root.tgz");
    let st: Vec<u16> = m.iter().map(|x| x.0).collect();
    assert_eq!(st, [206, 200], "{m:?}");

    // A mirror of a file path is refused at validation, naming the key.
    std::fs::write(
        &cfg,
        "sources:\n  10_root: {type: tgz, uri: /srv/root.tgz, mirrors: ['http://m/root.tgz']}\n",
    )
    .unwrap();
    let out = extract(&cfg, &target);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("sources.10_root.mirrors") && err.contains("http(s) uri"),
        "{err}"
    );
}
