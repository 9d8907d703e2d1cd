//! `deployer inspect` on the harness's real Debian images (built once and cached; inspecting
//! boots no VM): the cloud root as tgz and as ddgz pass, the ddgz declared `ddtgz` is an error
//! naming `ddgz`, the root without cloud-init fails with MAAS's message. One test, so the
//! images are built (on a cold cache) one at a time.

use qemu_tests::image::{
    self, DiskRecipe, CLOUD_ROOT, HOOKS_DISK, MARKER_HOOK, NO_CLOUD_INIT_ROOT,
};
use qemu_tests::{harness_unavailable, skip, Phases};
use std::path::Path;
use testkit::inspect::Inspected;

fn inspect(image: &Path, args: &[&str]) -> Inspected {
    let mut all = vec![image.to_str().expect("utf-8 path")];
    all.extend_from_slice(args);
    let r = testkit::inspect::inspect(&all, &[]);
    println!("{}", r.stdout);
    r
}

fn no_errors(r: &Inspected) {
    let bad: Vec<&str> = r
        .stdout
        .lines()
        .filter(|l| l.starts_with("error") || l.starts_with("warning"))
        .collect();
    assert!(bad.is_empty(), "{bad:#?}");
}

#[test]
fn inspect_the_harness_debian_images() {
    if let Some(why) = harness_unavailable() {
        skip("inspect_the_harness_debian_images", &why);
        return;
    }
    let mut ph = Phases::new("inspect");
    let (tgz, _) = ph
        .run("cloud root tgz", || image::tgz(&CLOUD_ROOT))
        .expect("tgz");
    let r = ph
        .run("inspect tgz", || {
            anyhow::Ok(inspect(&tgz, &["--filetype", "tgz"]))
        })
        .unwrap();
    assert_eq!(r.code, 0, "{}", r.stdout);
    no_errors(&r);
    assert!(r.line("format").contains("upload it with filetype tgz"));
    assert!(r.line("os").contains("Debian GNU/Linux"));
    assert!(r.line("cloud-init").contains("takes network config v2"));
    assert!(r.line("bootloader").contains("GRUB for BIOS and UEFI"));

    let (ddgz, _) = ph
        .run("cloud ddgz", || image::ddgz(&HOOKS_DISK))
        .expect("ddgz");
    let r = ph
        .run("inspect ddgz", || {
            anyhow::Ok(inspect(&ddgz, &["--filetype", "ddgz"]))
        })
        .unwrap();
    assert_eq!(r.code, 0, "{}", r.stdout);
    no_errors(&r);
    assert!(r.line("partition-table").contains("GPT with 3 partitions"));
    assert!(r.line("root").contains(&format!(
        "partition {} holds /curtin",
        image::ROOT_PARTITION
    )));
    assert!(r
        .line("root-grow")
        .contains("the root is the last partition"));
    let fw = r.line("firmware");
    assert!(
        fw.contains("BIOS (GRUB in the MBR, core.img in partition 1"),
        "{fw}"
    );
    assert!(fw.contains("EFI/BOOT/BOOTX64.EFI on partition 2"), "{fw}");
    assert!(r
        .line("hook curtin-hooks")
        .contains("shell (sh), executable"));

    let r = ph
        .run("inspect ddgz as ddtgz", || {
            anyhow::Ok(inspect(&ddgz, &["--filetype", "ddtgz"]))
        })
        .unwrap();
    assert_eq!(r.code, 2, "{}", r.stdout);
    let ft = r.line("filetype");
    assert!(ft.starts_with("error"), "{ft}");
    assert!(ft.contains("declared ddtgz"), "{ft}");
    assert!(ft.contains("upload it with filetype ddgz"), "{ft}");

    let (bad, _) = ph
        .run("no-cloud-init tgz", || image::tgz(&NO_CLOUD_INIT_ROOT))
        .expect("tgz");
    let r = ph
        .run("inspect no-cloud-init", || anyhow::Ok(inspect(&bad, &[])))
        .unwrap();
    assert_eq!(r.code, 2, "{}", r.stdout);
    let c = r.line("cloud-init");
    assert!(c.starts_with("error"), "{c}");
    assert!(
        c.ends_with(
            "  cloud-init not detected, MAAS will not be able to configure this machine properly"
        ),
        "{c}"
    );
}

/// The 4 GiB Debian dd image of `scripts/bench-inspect` (the cloud root on a larger disk).
const BENCH_DISK: DiskRecipe = DiskRecipe {
    name: "debian-cloud-bench-4g-ddgz",
    root: CLOUD_ROOT,
    size: 4 << 30,
    curtin_hooks: Some(MARKER_HOOK),
};

/// Not a test: builds (or finds in the cache) the benchmark's image and prints its path
/// (`scripts/bench-inspect` runs it).
#[test]
#[ignore = "scripts/bench-inspect builds its image with this"]
fn bench_image() {
    let (p, _) = image::ddgz(&BENCH_DISK).expect("bench ddgz");
    println!("BENCH-IMAGE {}", p.display());
}
