//! The release build for the ephemeral OS is one static binary: no shared library to find.
//! `scripts/test` builds it with `scripts/build-static` when it is missing (a release build
//! takes minutes, so an existing one is reused).

use std::process::Command;

#[test]
fn static_build_is_not_dynamic() {
    let bin = testkit::target_dir()
        .parent()
        .expect("target dir")
        .join("x86_64-unknown-linux-gnu/release/deployer");
    assert!(
        bin.exists(),
        "{} is missing: run scripts/build-static (scripts/test does)",
        bin.display()
    );
    let file = Command::new("file")
        .arg("-L")
        .arg(&bin)
        .output()
        .expect("run file");
    let file = String::from_utf8_lossy(&file.stdout).into_owned();
    assert!(file.contains("static"), "file says: {file}");
    assert!(!file.contains("dynamically linked"), "file says: {file}");
    let ldd = Command::new("ldd").arg(&bin).output().expect("run ldd");
    let says = format!(
        "{}{}",
        String::from_utf8_lossy(&ldd.stdout),
        String::from_utf8_lossy(&ldd.stderr)
    );
    assert!(
        says.contains("not a dynamic executable") || says.contains("statically linked"),
        "ldd says: {says}"
    );
    // and it runs, with nothing from the system's library path
    let o = Command::new(&bin)
        .arg("--version")
        .env("LD_LIBRARY_PATH", "/nonexistent")
        .output()
        .expect("run static deployer");
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("deployer "));
}
