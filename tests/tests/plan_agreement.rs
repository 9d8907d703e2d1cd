//! What `deployer plan` says is what `deployer block-meta` writes: for every example config with
//! storage and for layouts written here (gpt, msdos with logical partitions, `offset`, 4Kn
//! disks, sizes that are not whole sectors), each partition's start and size in the plan equal
//! the table `sfdisk --json` reads back from the loop disk.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use testkit::{sh, LoopDisk};

const MIB: u64 = 1 << 20;

/// A partition as the plan prints it, or as the table has it: (number, start byte, size bytes).
type Placed = BTreeMap<String, (u64, u64, u64)>;

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

/// The storage items of an example (disks and partitions only: file systems and mounts do not
/// move partitions, and this host's kernel lacks vfat).
fn example_storage(text: &str) -> Option<Value> {
    let doc = testkit::yaml11::pyyaml(text);
    let s = doc.get("storage")?.clone();
    let items: Vec<Value> = s["config"]
        .as_array()?
        .iter()
        .filter(|i| matches!(i["type"].as_str(), Some("disk" | "partition")))
        .cloned()
        .collect();
    Some(json!({"version": s["version"], "config": items}))
}

/// Bytes a disk needs for the partitions the config gives it, with room for the tables.
fn disk_bytes(storage: &Value, disk: &str, sector: u64) -> u64 {
    let parts: Vec<&Value> = storage["config"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["type"] == "partition" && i["device"] == disk)
        .collect();
    let sum: u64 = parts
        .iter()
        .filter(|p| p["flag"] != "logical")
        .map(|p| bytes(&p["size"]) + bytes(&p["offset"]))
        .sum();
    let room = (parts.len() as u64 + 8) * MIB + 64 * sector;
    (sum + room).div_ceil(MIB) * MIB
}

/// A config size (`512M`, `100000001B`, a number) in bytes, as curtin's human2bytes.
fn bytes(v: &Value) -> u64 {
    if let Some(n) = v.as_u64() {
        return n;
    }
    let Some(s) = v.as_str() else { return 0 };
    let s = s.trim_end_matches('B');
    let (num, mult) = match s.chars().last() {
        Some('K') => (&s[..s.len() - 1], 1u64 << 10),
        Some('M') => (&s[..s.len() - 1], 1 << 20),
        Some('G') => (&s[..s.len() - 1], 1 << 30),
        Some('T') => (&s[..s.len() - 1], 1 << 40),
        _ => (s, 1),
    };
    (num.parse::<f64>().unwrap() * mult as f64) as u64
}

/// One layout on loop disks of one sector size.
struct Case {
    name: String,
    storage: Value,
    sector: u32,
}

impl Case {
    fn new(name: &str, sector: u32, storage: Value) -> Case {
        Case {
            name: name.into(),
            storage,
            sector,
        }
    }

    fn disks(&self) -> Vec<String> {
        self.storage["config"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| i["type"] == "disk")
            .map(|i| i["id"].as_str().unwrap().to_string())
            .collect()
    }
}

/// The partition lines under each `disk <id>:` line of a plan.
fn plan_partitions(out: &str) -> BTreeMap<String, Placed> {
    let mut all: BTreeMap<String, Placed> = BTreeMap::new();
    let mut disk = None;
    for line in out.lines() {
        let l = line.trim_start();
        if let Some(rest) = l.strip_prefix("disk ") {
            disk = rest.split(':').next().map(str::to_string);
        } else if let Some(rest) = l.strip_prefix("partition ") {
            // partition N ID: start B (sector S), size H (B bytes), ...
            let (head, tail) = rest.split_once(": start ").expect("a placed partition");
            let (num, id) = head.split_once(' ').unwrap();
            let start: u64 = tail.split(' ').next().unwrap().parse().unwrap();
            let size_part = tail.split(", size ").nth(1).unwrap();
            let size: u64 = size_part
                .split_once('(')
                .unwrap()
                .1
                .split(' ')
                .next()
                .unwrap()
                .parse()
                .unwrap();
            all.entry(disk.clone().expect("a disk line first"))
                .or_default()
                .insert(id.to_string(), (num.parse().unwrap(), start, size));
        }
    }
    all
}

/// The table sfdisk reads, by partition number: (start byte, size bytes).
fn written(dev: &Path) -> BTreeMap<u64, (u64, u64)> {
    let j: Value = serde_json::from_str(&sh(&format!("sfdisk --json {}", dev.display()))).unwrap();
    let t = &j["partitiontable"];
    let sector = t["sectorsize"].as_u64().unwrap_or(512);
    let prefix = format!("{}p", dev.display());
    t["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let n: u64 = p["node"]
                .as_str()
                .unwrap()
                .strip_prefix(&prefix)
                .unwrap()
                .parse()
                .unwrap();
            (
                n,
                (
                    p["start"].as_u64().unwrap() * sector,
                    p["size"].as_u64().unwrap() * sector,
                ),
            )
        })
        .collect()
}

fn plan(cfg: &Path, target: Option<&Path>) -> String {
    let mut c = testkit::deployer();
    c.args(["plan", "-c"]).arg(cfg);
    if let Some(t) = target {
        c.arg("--target").arg(t);
    }
    let o = c.output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "plan failed: {}\n{out}",
        String::from_utf8_lossy(&o.stderr)
    );
    out
}

/// Plan (with and without `--target`), run block-meta, compare with what is on the disks.
fn agree(case: &Case) {
    let mut storage = case.storage.clone();
    let mut loops: BTreeMap<String, LoopDisk> = BTreeMap::new();
    for id in case.disks() {
        let size = disk_bytes(&storage, &id, case.sector as u64);
        loops.insert(id, LoopDisk::with_sector_size(size, case.sector));
    }
    for item in storage["config"].as_array_mut().unwrap() {
        if item["type"] == "disk" {
            let m = item.as_object_mut().unwrap();
            m.remove("serial");
            m.remove("wwn");
            let dev = &loops[m["id"].as_str().unwrap()].dev;
            m.insert("path".into(), json!(dev));
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("storage.json");
    std::fs::write(&cfg, json!({"storage": storage}).to_string()).unwrap();

    let by_config = plan_partitions(&plan(&cfg, None));
    // --target stands for the grub_device disk, else the first one.
    let first = case.storage["config"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["type"] == "disk")
        .find(|i| i["grub_device"] == true)
        .or_else(|| {
            case.storage["config"]
                .as_array()
                .unwrap()
                .iter()
                .find(|i| i["type"] == "disk")
        })
        .and_then(|i| i["id"].as_str())
        .unwrap()
        .to_string();
    let by_target = plan_partitions(&plan(&cfg, Some(&loops[&first].dev)));
    assert_eq!(
        by_target.get(&first),
        by_config.get(&first),
        "{}: plan --target and plan by the config's disk differ",
        case.name
    );

    // Disks and partitions only: nothing is mounted there.
    let target = dir.path().join("target");
    let o = testkit::deployer()
        .arg("block-meta")
        .arg("-c")
        .arg(&cfg)
        .arg("--target-mount")
        .arg(&target)
        .env("OUTPUT_FSTAB", dir.path().join("fstab"))
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{}: block-meta failed where plan placed everything:\n{}",
        case.name,
        String::from_utf8_lossy(&o.stderr)
    );

    for (id, disk) in &loops {
        let planned = by_config.get(id).cloned().unwrap_or_default();
        let table = written(&disk.dev);
        let from_plan: BTreeMap<u64, (u64, u64)> = planned
            .values()
            .map(|&(n, start, size)| (n, (start, size)))
            .collect();
        assert!(
            !from_plan.is_empty(),
            "{}: plan placed nothing on {id}",
            case.name
        );
        if from_plan != table {
            panic!(
                "{}: disk {id} ({}-byte sectors): plan (number: start, size in bytes) {from_plan:?}\n but the table is {table:?}",
                case.name, case.sector
            );
        }
    }
}

fn part(id: &str, size: &str, extra: Value) -> Value {
    let mut p = json!({"id": id, "type": "partition", "device": "d", "size": size});
    if let Value::Object(m) = extra {
        p.as_object_mut().unwrap().extend(m);
    }
    p
}

fn layout(version: u32, ptable: &str, parts: Vec<Value>) -> Value {
    let mut items =
        vec![json!({"id": "d", "type": "disk", "ptable": ptable, "wipe": "superblock"})];
    items.extend(parts);
    json!({"version": version, "config": items})
}

/// v1 grows the extended partition by 1 MiB per logical one (for the EBRs); v2 does not, so
/// there the config leaves the room.
fn logical_layout(version: u32) -> Value {
    let ext = if version < 2 { "3G" } else { "3075M" };
    layout(
        version,
        "msdos",
        vec![
            part("boot", "512M", json!({"flag": "boot"})),
            part("ext", ext, json!({"flag": "extended"})),
            part("l1", "1G", json!({"flag": "logical"})),
            part("l2", "1G", json!({"flag": "logical"})),
            part("l3", "1G", json!({"flag": "logical"})),
        ],
    )
}

fn written_cases() -> Vec<Case> {
    let odd = |ptable| {
        layout(
            1,
            ptable,
            vec![
                part("a", "100000001B", json!({})),
                part("b", "1500K", json!({})),
                part("c", "77777777B", json!({"flag": "swap"})),
            ],
        )
    };
    vec![
        Case::new(
            "gpt v1",
            512,
            layout(
                1,
                "gpt",
                vec![
                    part("grub", "1M", json!({"flag": "bios_grub"})),
                    part("esp", "512M", json!({"flag": "boot"})),
                    part("root", "2G", json!({})),
                ],
            ),
        ),
        Case::new("msdos v1, extended + 3 logical", 512, logical_layout(1)),
        Case::new("msdos v2, extended + 3 logical", 512, logical_layout(2)),
        Case::new(
            "msdos v1 on 4Kn, extended + 3 logical",
            4096,
            logical_layout(1),
        ),
        Case::new(
            "gpt v1 with offset (ignored, as curtin v1)",
            512,
            layout(
                1,
                "gpt",
                vec![
                    part(
                        "grub",
                        "1M",
                        json!({"flag": "bios_grub", "offset": "4194304B"}),
                    ),
                    part("root", "1G", json!({"offset": "100M"})),
                ],
            ),
        ),
        Case::new(
            "gpt v2 with offset",
            512,
            layout(
                2,
                "gpt",
                vec![
                    part(
                        "grub",
                        "1M",
                        json!({"flag": "bios_grub", "offset": "4194304B"}),
                    ),
                    part("root", "1G", json!({"offset": "100M"})),
                    part("swap", "1500K", json!({"flag": "swap"})),
                ],
            ),
        ),
        Case::new(
            "gpt v1 on 4Kn",
            4096,
            layout(
                1,
                "gpt",
                vec![
                    part("esp", "512M", json!({"flag": "boot"})),
                    part("root", "1G", json!({})),
                ],
            ),
        ),
        Case::new("gpt v1, sizes not whole sectors", 512, odd("gpt")),
        Case::new("msdos v1, sizes not whole sectors", 512, odd("msdos")),
        Case::new("gpt v1 on 4Kn, sizes not whole sectors", 4096, odd("gpt")),
    ]
}

#[test]
fn plan_places_partitions_where_block_meta_writes_them() {
    testkit::require_root();
    let mut cases = written_cases();
    let mut files: Vec<PathBuf> = Vec::new();
    for dir in [
        examples(),
        examples().join("demo"),
        examples().join("maas-parts"),
    ] {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "yaml" || x == "cfg") {
                files.push(p);
            }
        }
    }
    files.sort();
    let mut from_examples = 0;
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        if let Some(storage) = example_storage(&text) {
            from_examples += 1;
            let name = f.strip_prefix(examples()).unwrap().display().to_string();
            cases.push(Case::new(&format!("examples/{name}"), 512, storage));
        }
    }
    assert!(from_examples >= 5, "examples with storage: {from_examples}");
    for c in &cases {
        agree(c);
        eprintln!("agrees: {}", c.name);
    }
}
