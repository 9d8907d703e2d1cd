//! Loading, merging, typing and validating configs, as a user writes them.

use preseed::load::{load_documents, load_files, merge, Loaded};
use preseed::sources::SourceType;
use preseed::storage::{Flag, Fstype, Item, Ptable, Wipe};
use preseed::ConfigError;
use std::path::{Path, PathBuf};

fn load(yaml: &str) -> Result<Loaded, ConfigError> {
    load_documents(vec![("test.yaml".into(), yaml.into())])
}

fn err(yaml: &str) -> String {
    load(yaml)
        .expect_err("config should be rejected")
        .to_string()
}

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

#[test]
fn every_example_config_loads() {
    let mut n = 0;
    for e in std::fs::read_dir(examples()).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "yaml" || x == "json") {
            let l = load_files(std::slice::from_ref(&p))
                .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            assert!(l.warnings.is_empty(), "{}: {:?}", p.display(), l.warnings);
            n += 1;
        }
    }
    assert!(n >= 6, "only {n} examples");
}

#[test]
fn maas_numbered_parts_load_in_order() {
    let dir = examples().join("maas-parts");
    let mut parts: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    parts.sort();
    assert_eq!(parts[0].file_name().unwrap(), "config-000.cfg");
    let l = load_files(&parts).unwrap();
    assert!(l.warnings.is_empty(), "{:?}", l.warnings);
    let c = &l.config;
    assert_eq!(c.storage.as_ref().unwrap().config.len(), 7);
    assert_eq!(c.dd_source().unwrap().kind, SourceType::DdTgz);
    assert!(c.reporting["maas"].oauth().is_some());
    assert_eq!(c.install.post_files.len(), 2);
    assert_eq!(c.verbosity, Some(3)); // from inside the config archive
    assert_eq!(c.swap.as_ref().unwrap().size, Some(0)); // MAAS turns the swap file off with 0B
    assert!(matches!(
        c.network.as_ref().map(|n| &n.body),
        Some(preseed::network::Body::V2)
    )); // the JSON part
    assert!(c.commands["late"]["maas"].is_some());
}

#[test]
fn later_documents_win_and_mappings_merge() {
    let l = load_documents(vec![
        (
            "a.yaml".into(),
            "install: {log_file: /a.log, post_files: [/a]}\nverbosity: 1\n".into(),
        ),
        (
            "b.yaml".into(),
            "install: {post_files: [/b1, /b2]}\nverbosity: 2\n".into(),
        ),
    ])
    .unwrap();
    assert_eq!(l.config.install.log_file.as_deref(), Some("/a.log")); // merged from a
    assert_eq!(l.config.install.post_files, vec!["/b1", "/b2"]); // list replaced, not appended
    assert_eq!(l.config.verbosity, Some(2));
    // builtin error_tarfile survives under both
    assert_eq!(
        l.config.install.error_tarfile.as_deref(),
        Some("/var/log/curtin/curtin-error-logs.tar")
    );
}

#[test]
fn lists_are_replaced_not_concatenated() {
    let mut a: yaml_serde::Value = yaml_serde::from_str("{x: [1, 2], m: {k: [a]}, s: 1}").unwrap();
    let b: yaml_serde::Value = yaml_serde::from_str("{x: [3], m: {j: 2}, s: {now: map}}").unwrap();
    merge(&mut a, b);
    let want: yaml_serde::Value =
        yaml_serde::from_str("{x: [3], m: {k: [a], j: 2}, s: {now: map}}").unwrap();
    assert_eq!(a, want);
    let l = load_documents(vec![
        ("a".into(), "stages: [early, late]\n".into()),
        ("b".into(), "stages: [late]\n".into()),
    ])
    .unwrap();
    assert_eq!(l.config.stages, vec!["late"]);
}

#[test]
fn builtin_stages_and_commands_are_curtins() {
    let l = load("{}").unwrap();
    assert_eq!(
        l.config.stages,
        [
            "early",
            "partitioning",
            "network",
            "extract",
            "curthooks",
            "hook",
            "late"
        ]
    );
    let net = &l.config.commands["network"]["builtin"];
    assert_eq!(net.as_ref().unwrap().display(), "curtin net-meta auto");
    // a null disables a builtin
    let l = load("network_commands: {builtin: null}").unwrap();
    assert_eq!(l.config.commands["network"]["builtin"], None);
}

#[test]
fn commands_run_in_sorted_key_order_and_take_all_shapes() {
    let l = load(
        "late_commands:\n  maas: [wget, x]\n  99-y: echo y\n  98-x: ['true']\n  10-off: ''\n  builtin: []\n",
    )
    .unwrap();
    let keys: Vec<_> = l.config.commands["late"].keys().cloned().collect();
    assert_eq!(keys, ["10-off", "98-x", "99-y", "builtin", "maas"]);
    use preseed::commands::Command;
    let late = &l.config.commands["late"];
    assert_eq!(late["99-y"], Some(Command::Shell("echo y".into())));
    assert_eq!(
        late["maas"],
        Some(Command::Exec(vec!["wget".into(), "x".into()]))
    );
    assert_eq!(late["10-off"], None);
    let e = err("late_commands: [echo hi]");
    assert!(e.contains("late_commands: must be a mapping"), "{e}");
}

#[test]
fn sources_in_all_three_shapes() {
    let l =
        load("sources: {b: 'dd-xz:http://h/b.xz', a: {type: tgz, uri: 'http://h/a.tgz'}}").unwrap();
    let names: Vec<_> = l.config.sources_sorted().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["a", "b"]);
    assert_eq!(l.config.sources["b"].kind, SourceType::DdXz);
    assert_eq!(l.config.sources["b"].uri, "http://h/b.xz");

    let l = load("sources: ['http://h/x.tgz', 'squashfs://http://h/y']").unwrap();
    let s: Vec<_> = l
        .config
        .sources_sorted()
        .map(|s| (s.kind, s.uri.clone()))
        .collect();
    assert_eq!(
        s,
        [
            (SourceType::Tgz, "http://h/x.tgz".into()),
            (SourceType::Fsimage, "http://h/y".into())
        ]
    );

    let l = load("sources: 'dd-zst:http://h/z.zst'").unwrap();
    assert_eq!(l.config.dd_source().unwrap().kind, SourceType::DdZst);
}

#[test]
fn every_prefix_through_a_config() {
    for t in SourceType::ALL {
        let l = load(&format!("sources: {{s: '{}:http://h/img'}}", t.prefix())).unwrap();
        assert_eq!(l.config.sources["s"].kind, t);
        assert_eq!(l.config.sources["s"].uri, "http://h/img");
    }
    let l = load("sources: {s: 'squashfs://http://h/fs'}").unwrap();
    assert_eq!(l.config.sources["s"].kind, SourceType::Fsimage);
    // curtin would take it for a tarball URL and fail when fetching it; we say why at once.
    let e = err("sources: {s: 'weird:http://h/x'}");
    assert!(
        e.contains("sources.s: unknown source prefix 'weird:'") && e.contains("dd-raw:"),
        "{e}"
    );
    let l = load("sources: {s: 'http://h/root-tgz'}").unwrap();
    assert_eq!(l.config.sources["s"].kind, SourceType::Tgz);
}

#[test]
fn source_checksums_and_size() {
    let sha = "ab".repeat(32);
    let l = load(&format!(
        "sources: {{img: {{type: dd-gz, uri: 'http://h/i.gz', sha256: '{sha}', size: 1G}}}}"
    ))
    .unwrap();
    let s = &l.config.sources["img"];
    assert_eq!(s.sha256.as_deref(), Some(sha.as_str()));
    assert_eq!(s.size, Some(1 << 30));
    let e = err("sources: {img: {type: dd-gz, uri: 'http://h/i.gz', sha256: 'abc'}}");
    assert!(
        e.contains("sources.img.sha256: must be 64 hex digits"),
        "{e}"
    );
    let e = err("sources: {img: {type: dd-img, uri: 'http://h/i'}}");
    assert!(
        e.contains("sources.img.type: unknown source type 'dd-img'"),
        "{e}"
    );
    let e = err("sources: {a: 'dd-gz:http://h/a', b: 'dd-xz:http://h/b'}");
    assert!(e.contains("more than one disk image (a, b)"), "{e}");
}

const STORAGE: &str = "storage:
  version: 1
  config:
    - {id: d, type: disk, ptable: gpt, serial: S1, wipe: superblock, grub_device: 1}
    - {id: p1, type: partition, device: d, size: 1.5G, flag: boot, number: 1}
    - {id: p2, type: partition, device: d, size: 4194304B, offset: 1M, flag: ''}
    - {id: f1, type: format, volume: p1, fstype: vfat, extra_options: ['-v']}
    - {id: m1, type: mount, device: f1, path: /boot/efi, passno: 2}
";

#[test]
fn storage_is_typed() {
    let l = load(STORAGE).unwrap();
    let s = l.config.storage.unwrap();
    assert_eq!(s.version, 1);
    let Item::Disk(d) = &s.config[0] else {
        panic!()
    };
    assert_eq!(
        (d.ptable, d.wipe, d.grub_device),
        (Some(Ptable::Gpt), Some(Wipe::Superblock), true)
    );
    let Item::Partition(p) = s.get("p1").unwrap() else {
        panic!()
    };
    assert_eq!(
        (p.size, p.flag, p.number),
        (3 << 29, Some(Flag::Boot), Some(1))
    );
    let Item::Partition(p) = s.get("p2").unwrap() else {
        panic!()
    };
    assert_eq!((p.size, p.offset, p.flag), (4194304, Some(1 << 20), None));
    let Item::Format(f) = s.get("f1").unwrap() else {
        panic!()
    };
    assert_eq!(f.fstype, Fstype::Vfat);
    let Item::Mount(m) = s.get("m1").unwrap() else {
        panic!()
    };
    assert_eq!(m.passno.as_deref(), Some("2"));
    assert!(s.check_supported().is_ok());
}

#[test]
fn sizes_rejected_with_curtins_message_and_key_path() {
    for (bad, msg) in [
        ("1kB", "'1kB' is not valid input."),
        ("8GiB", "'8GiB' is not valid input."),
        ("100%", "'100%' is not valid input."),
        ("1.5B", "resulted in non-integer"),
    ] {
        let e = err(&STORAGE.replace("size: 1.5G", &format!("size: '{bad}'")));
        assert!(e.contains("storage.config[1].size: "), "{e}");
        assert!(e.contains(msg), "{e}");
        assert!(e.starts_with("test.yaml:5:"), "line of the item: {e}");
    }
    assert_eq!(preseed::size::parse_size("512M").unwrap(), 512 << 20);
}

#[test]
fn errors_carry_file_line_column_and_key_path() {
    let e = load(STORAGE.replace("fstype: vfat", "fstype: vfta").as_str()).unwrap_err();
    assert_eq!(e.path, "storage.config[3].fstype");
    assert_eq!(e.origin.as_deref(), Some("test.yaml"));
    assert_eq!(e.line, Some(7));
    assert!(e.column.is_some());
    assert!(e.to_string().contains("unknown variant `vfta`"), "{e}");

    // the file that set the value is named, not the first one
    let e = load_documents(vec![
        ("base.yaml".into(), STORAGE.into()),
        (
            "over.yaml".into(),
            "verbosity: 1\ninstall:\n  post_files: {a: b}\n".into(),
        ),
    ])
    .unwrap_err();
    assert_eq!(
        (e.origin.as_deref(), e.line, e.path.as_str()),
        (Some("over.yaml"), Some(3), "install.post_files")
    );

    // syntax errors name the line
    let e = load("a: [1, 2\nb: 3\n").unwrap_err();
    assert_eq!(e.origin.as_deref(), Some("test.yaml"));
    assert!(e.line.is_some(), "{e}");
}

#[test]
fn unknown_fstype_and_ptable_are_errors() {
    let e = err(&STORAGE.replace("ptable: gpt", "ptable: apm"));
    assert!(
        e.contains("storage.config[0].ptable") && e.contains("apm"),
        "{e}"
    );
    let e = err(&STORAGE.replace("fstype: vfat", "fstype: zfs"));
    assert!(e.contains("storage.config[3].fstype"), "{e}");
    let e = err(&STORAGE.replace("flag: boot", "flag: esp"));
    assert!(
        e.contains("storage.config[1].flag: unknown partition flag esp"),
        "{e}"
    );
}

#[test]
fn storage_versions() {
    assert_eq!(
        load(&STORAGE.replace("version: 1", "version: 2"))
            .unwrap()
            .config
            .storage
            .unwrap()
            .version,
        2
    );
    let e = err(&STORAGE.replace("version: 1", "version: 3"));
    assert!(
        e.contains("storage.version: storage version 3 is not supported (1 or 2)"),
        "{e}"
    );
    let e = err("storage: {config: []}");
    assert!(e.contains("storage.version"), "{e}");
}

#[test]
fn storage_reference_errors_name_both_ends() {
    let e = err(&STORAGE.replace("device: d,", "device: nope,"));
    assert!(
        e.contains("storage.config[1].device: storage.config[1] (partition id=p1) refers to 'nope', which no item has as id"),
        "{e}"
    );
    // a partition on a format
    let e = err(&STORAGE.replace("device: d, size: 4194304B", "device: f1, size: 4194304B"));
    assert!(
        e.contains(
            "storage.config[2] (partition id=p2) cannot be on storage.config[3] (format id=f1)"
        ),
        "{e}"
    );
    // a mount on a partition
    let e = err(&STORAGE.replace("device: f1, path", "device: p1, path"));
    assert!(e.contains("(mount id=m1) cannot be on storage.config[1] (partition id=p1): `device` must name a format"), "{e}");
    // duplicate ids
    let e = err(&STORAGE.replace("id: p2", "id: p1"));
    assert!(e.contains("duplicate id 'p1'"), "{e}");
    // a cycle
    let e = err(
        "storage:\n  version: 1\n  config:\n    - {id: c1, type: dm_crypt, volume: c2, key: k}\n    - {id: c2, type: dm_crypt, volume: c1, key: k}\n",
    );
    assert!(
        e.contains("reference cycle") && e.contains("id=c1") && e.contains("id=c2"),
        "{e}"
    );
    // a cycle through a list of devices
    let e = err(
        "storage:\n  version: 1\n  config:\n    - {id: d, type: disk, path: /dev/vda}\n    - {id: md1, type: raid, name: md1, raidlevel: 1, devices: [d, md2]}\n    - {id: md2, type: raid, name: md2, raidlevel: 1, devices: [md1]}\n",
    );
    assert!(
        e.contains("reference cycle") && e.contains("id=md1") && e.contains("id=md2"),
        "{e}"
    );
    // no way to find the disk
    let e = err(&STORAGE.replace("serial: S1, ", ""));
    assert!(e.contains("needs one of serial, wwn or path"), "{e}");
    // unknown type
    let e = err(&STORAGE.replace("type: mount", "type: mnt"));
    assert!(
        e.contains("storage.config[4].type: unknown storage type 'mnt'"),
        "{e}"
    );
}

#[test]
fn mount_paths_are_absolute_without_dotdot_and_unique() {
    let e = err(&STORAGE.replace("path: /boot/efi", "path: /../../../tmp/x"));
    assert!(
        e.contains("storage.config[4].path: storage.config[4] (mount id=m1): path \"/../../../tmp/x\" has a '..' component"),
        "{e}"
    );
    let e = err(&STORAGE.replace("path: /boot/efi", "path: boot/efi"));
    assert!(
        e.contains("(mount id=m1): path \"boot/efi\" is not absolute"),
        "{e}"
    );
    // Two mounts at / (spelt differently): both items named.
    let two = format!(
        "{}    - {{id: f2, type: format, volume: p2, fstype: ext4}}\n    - {{id: m2, type: mount, device: f2, path: /boot/efi/}}\n",
        STORAGE
    );
    let e = err(&two);
    assert!(
        e.contains("storage.config[6].path: storage.config[6] (mount id=m2) mounts at /boot/efi, as storage.config[4] (mount id=m1) does"),
        "{e}"
    );
    // `none` (swap) and normal forms pass.
    assert!(load(&two.replace("path: /boot/efi/}", "path: none}")).is_ok());
    assert!(load(&STORAGE.replace("path: /boot/efi", "path: //boot/./efi")).is_ok());
}

#[test]
fn forward_reference_is_a_warning() {
    let yaml = "storage:\n  version: 1\n  config:\n    - {id: p1, type: partition, device: d, size: 1G}\n    - {id: d, type: disk, path: /dev/vda, ptable: gpt}\n";
    let l = load(yaml).unwrap();
    assert_eq!(l.warnings.len(), 1);
    assert!(
        l.warnings[0].contains("listed after it"),
        "{:?}",
        l.warnings
    );
}

#[test]
fn unsupported_types_say_so() {
    let l = load(
        "storage:\n  version: 1\n  config:\n    - {id: d, type: disk, path: /dev/vda}\n    - {id: e, type: disk, path: /dev/vdb}\n    - {id: vg0, type: lvm_volgroup, name: vg0, devices: [d]}\n    - {id: lv0, type: lvm_partition, volgroup: vg0, name: root, size: 10G}\n    - {id: md0, type: raid, name: md0, raidlevel: 1, devices: [e, m]}\n    - {id: m, type: disk, serial: m1, multipath: mpatha}\n    - {id: z, type: zpool, pool: rpool, vdevs: [d]}\n    - {id: n, type: nvme_controller, transport: tcp}\n",
    )
    .unwrap();
    let s = l.config.storage.unwrap();
    // The layers are installable; the first item that is not is named.
    assert_eq!(
        s.check_supported().unwrap_err(),
        "not supported yet: disk id=m on multipath (mpatha)"
    );
    for (id, want) in [
        ("z", "not supported yet: zpool id=z"),
        ("n", "not supported yet: nvme_controller id=n"),
    ] {
        assert_eq!(s.get(id).unwrap().unsupported().unwrap(), want);
    }
    for id in ["vg0", "lv0", "md0", "d"] {
        assert_eq!(s.get(id).unwrap().unsupported(), None, "{id}");
    }
    let iscsi = load("storage:\n  version: 1\n  config:\n    - {id: d, type: disk, path: 'iscsi:10.0.0.1::3260:1:iqn.x'}\n").unwrap();
    assert_eq!(
        iscsi.config.storage.unwrap().check_supported().unwrap_err(),
        "not supported yet: disk id=d on iSCSI (iscsi:10.0.0.1::3260:1:iqn.x)"
    );
}

#[test]
fn unknown_top_level_keys_are_kept_as_warnings() {
    let l = load("verbosity: 1\nfrobnicate: {a: 1}\napt: {preserve_sources_list: true}\n").unwrap();
    assert_eq!(l.warnings.len(), 1, "{:?}", l.warnings);
    assert_eq!(
        l.warnings[0],
        "test.yaml:2:13: frobnicate: unknown key, ignored (curtin ignores it too)"
    );
    assert!(l.config.extra.contains_key("frobnicate"));
    assert!(l.config.extra.contains_key("apt")); // carried, no warning
    assert_eq!(l.merged["frobnicate"]["a"], 1);
}

#[test]
fn install_proxy_power_curthooks_write_files() {
    let l = load(
        "install: {save_install_config: false, unmount: disabled, error_tarfile: null}\nhttp_proxy: http://proxy:3128\npower_state: {mode: reboot, delay: now}\ncurthooks: {mode: target}\nwrite_files:\n  a: {path: /etc/a, content: hi, permissions: '0600', owner: 'root:root'}\n  b: {content: no path}\n  c: {path: /etc/c, content: !!binary aGVsbG8=}\n",
    )
    .unwrap();
    let c = &l.config;
    assert_eq!(c.install.save_install_config, None);
    assert_eq!(c.install.error_tarfile, None);
    assert!(c.install.unmount_disabled());
    assert_eq!(
        c.install.save_install_log.as_deref(),
        Some("/root/curtin-install.log")
    );
    assert_eq!(c.proxy.http_proxy.as_deref(), Some("http://proxy:3128"));
    assert_eq!(
        c.power_state.as_ref().unwrap().delay.as_deref(),
        Some("now")
    );
    assert_eq!(c.curthooks.mode, preseed::install::CurthooksMode::Target);
    assert_eq!(c.write_files["a"].permissions, 0o600);
    assert_eq!(c.write_files["c"].content, b"hello");
    assert!(!c.write_files.contains_key("b"));
    assert!(
        l.warnings
            .iter()
            .any(|w| w.contains("write_files.b: has no `path`")),
        "{:?}",
        l.warnings
    );
}

#[test]
fn reporting_handlers() {
    let l = load("reporting: {maas: {type: webhook, endpoint: 'http://x/', consumer_key: c, token_key: t, token_secret: s}, off: null}").unwrap();
    // curtin's default `logging` handler stays unless disabled; `off: null` removes nothing.
    let names: Vec<_> = l.config.reporting.keys().map(String::as_str).collect();
    assert_eq!(names, ["logging", "maas"]);
    let quiet = load("reporting: {logging: null}").unwrap();
    assert!(quiet.config.reporting.is_empty());
    assert_eq!(
        l.config.reporting["maas"].oauth(),
        Some(("c", "", "t", "s"))
    );
    let e = err("reporting: {maas: {type: webhook, endpoint: 'http://x/', consumer_key: c}}");
    assert!(
        e.contains("reporting.maas: consumer_key, token_key and token_secret must be all set"),
        "{e}"
    );
    let e = err("reporting: {maas: {type: carrier-pigeon}}");
    assert!(e.contains("reporting.maas.type"), "{e}");
}

#[test]
fn json_and_cloud_config_header() {
    let l = load_documents(vec![(
        "a.json".into(),
        "{\n\t\"verbosity\": 2,\n\t\"stages\": [\"early\"]\n}".into(),
    )])
    .unwrap();
    assert_eq!(l.config.verbosity, Some(2));
    let l = load("#cloud-config\nverbosity: 1\n").unwrap();
    assert_eq!(l.config.verbosity, Some(1));
    let e = err("- a\n- b\n");
    assert!(
        e.contains("test.yaml: a config document must be a mapping"),
        "{e}"
    );
}

#[test]
fn config_archive_parts() {
    let l = load("#curtin-config-archive\n- \"#curtin-config\\nverbosity: 1\\n\"\n- {type: text/curtin-config, content: \"verbosity: 2\\nfoo: 1\\n\"}\n").unwrap();
    assert_eq!(l.config.verbosity, Some(2));
    assert!(
        l.warnings[0].starts_with("test.yaml#part1"),
        "{:?}",
        l.warnings
    );
    let e = err("#curtin-config-archive\n- {type: text/plain, content: x}\n");
    assert!(e.contains("unknown archive part type 'text/plain'"), "{e}");
}

/// A storage config of two disks and `items` after them.
fn layers(items: &str) -> String {
    format!("storage:\n  version: 1\n  config:\n    - {{id: a, type: disk, path: /dev/vda}}\n    - {{id: b, type: disk, path: /dev/vdb}}\n    - {{id: c, type: disk, path: /dev/vdc}}\n{items}")
}

#[test]
fn storage_layers_are_checked() {
    let ok = load(&layers(
        "    - {id: md0, type: raid, name: md0, raidlevel: mirror, devices: [a, b], spare_devices: [c], metadata: 0.90}\n    - {id: vg, type: lvm_volgroup, name: vg0, devices: [md0]}\n    - {id: lv, type: lvm_partition, volgroup: vg, name: root}\n    - {id: cr, type: dm_crypt, volume: lv, keyfile: {path: /etc/keys/k, content: secret}, options: 'luks,discard'}\n",
    ))
    .unwrap();
    let s = ok.config.storage.unwrap();
    let Some(preseed::storage::Item::Raid(r)) = s.get("md0") else {
        panic!()
    };
    assert_eq!(r.raidlevel, preseed::storage::RaidLevel::Raid1);
    assert_eq!(r.metadata.as_deref(), Some("0.90"));
    let Some(preseed::storage::Item::DmCrypt(c)) = s.get("cr") else {
        panic!()
    };
    assert_eq!(c.options, ["luks", "discard"]);
    assert_eq!(c.mapping_name(), "cr");

    for (items, want) in [
        (
            "    - {id: md0, type: raid, name: md0, raidlevel: 5, devices: [a, b]}\n",
            "storage.config[3].devices: storage.config[3] (raid id=md0): raid5 needs at least 3 devices, got 2",
        ),
        (
            "    - {id: md0, type: raid, name: md0, raidlevel: 0, devices: [a, b], spare_devices: [c]}\n",
            "raid0 takes no spare devices",
        ),
        (
            "    - {id: md0, type: raid, name: md0, raidlevel: 7, devices: [a, b]}\n",
            "invalid raidlevel 7",
        ),
        (
            "    - {id: md0, type: raid, name: md0, raidlevel: 1, devices: [a, a]}\n",
            "'a' is listed twice",
        ),
        (
            "    - {id: md0, type: raid, name: a/b, raidlevel: 1, devices: [a, b]}\n",
            "\"a/b\" is not an md device name",
        ),
        (
            "    - {id: vg, type: lvm_volgroup, name: vg0, devices: []}\n",
            "a volume group needs at least one device",
        ),
        (
            "    - {id: cr, type: dm_crypt, volume: a}\n",
            "(dm_crypt id=cr): encryption key or keyfile must be specified",
        ),
        (
            "    - {id: cr, type: dm_crypt, volume: a, key: k, keyfile: /k}\n",
            "cannot specify both key and keyfile",
        ),
        (
            "    - {id: cr, type: dm_crypt, volume: a, keyfile: {path: k, content: x}}\n",
            "storage.config[3].keyfile.path",
        ),
        (
            "    - {id: bc, type: bcache, backing_device: a}\n",
            "backing device and cache device for bcache must be specified",
        ),
        (
            "    - {id: bc, type: bcache, backing_device: a, cache_device: b, cache_mode: fast}\n",
            "storage.config[3].cache_mode",
        ),
        (
            "    - {id: vg, type: lvm_volgroup, name: vg0, devices: [a]}\n    - {id: md0, type: raid, name: md0, raidlevel: 1, devices: [a, b]}\n",
            "'a' is used by both storage.config[3] (lvm_volgroup id=vg) and storage.config[4] (raid id=md0)",
        ),
    ] {
        let e = err(&layers(items));
        assert!(e.contains(want), "{items}: {e}");
    }
    // Several backing devices on one cache set.
    load(&layers("    - {id: b1, type: bcache, backing_device: a, cache_device: c, cache_mode: writeback}\n    - {id: b2, type: bcache, backing_device: b, cache_device: c}\n")).unwrap();
}

#[test]
fn a_dd_source_reads_only_the_disks() {
    // MAAS's VMFS6 layout for ESXi: vmfs6 items and fstype, which no install could apply.
    let yaml = "sources: {00_image: 'dd-gz:http://h/esxi.dd.gz'}\nstorage:\n  version: 1\n  config:\n    - {id: sda, name: sda, type: disk, wipe: superblock, ptable: gpt, serial: S1, grub_device: true}\n    - {id: sda-part1, type: partition, device: sda, size: 3M, number: 1}\n    - {id: datastore1, name: datastore1, type: vmfs6, devices: [sda-part3]}\n    - {id: x_format, type: format, fstype: vmfs6, volume: datastore1}\n";
    let l = load(yaml).unwrap();
    let s = l.config.storage.unwrap();
    assert!(s.disks_only);
    assert!(s.check_supported().is_ok());
    assert_eq!(s.disks().count(), 1);
    assert_eq!(s.get("datastore1").unwrap().type_name(), "vmfs6");
    // Without the dd source the same layout is refused at load.
    let e = err(&yaml.replace("sources: {00_image: 'dd-gz:http://h/esxi.dd.gz'}\n", ""));
    assert!(e.contains("unknown storage type 'vmfs6'"), "{e}");
    // The disks still have to make sense: they choose the disk.
    let e = err(&yaml
        .replace("serial: S1, ", "")
        .replace("ptable: gpt, ", "ptable: apm, "));
    assert!(e.contains("storage.config[0].ptable"), "{e}");
}

fn disks(l: &Loaded) -> Vec<preseed::storage::Disk> {
    l.config
        .storage
        .as_ref()
        .unwrap()
        .disks()
        .cloned()
        .collect()
}

/// The five shapes of curtin's own example configs that give a key twice (basic-dasd,
/// mirrorboot-uefi, preserve-bcache, reuse-msdos-partitions, simple-storage): each loads, the
/// last value is used, and a warning names both lines.
#[test]
fn keys_given_twice_load_as_curtin_reads_them_with_a_warning() {
    // A disk's `wipe` twice (basic-dasd: a dasd disk).
    let l = load(
        "storage:\n  version: 1\n  config:\n    - id: dasdb\n      type: disk\n      wipe: superblock\n      ptable: vtoc\n      serial: 0X1520\n      wipe: zero\n",
    )
    .unwrap();
    let Item::Disk(d) = &l.config.storage.as_ref().unwrap().config[0] else {
        panic!()
    };
    assert_eq!(d.wipe, Some(Wipe::Zero));
    assert_eq!(
        l.warnings,
        ["test.yaml:9:7: storage.config[0].wipe: key given twice (first on line 6): the value on line 9 is used, as curtin does"]
    );

    // A disk's `name` twice, in two disks (mirrorboot-uefi).
    let l = load(
        "storage:\n  version: 1\n  config:\n  - id: sda\n    name: sda\n    type: disk\n    serial: disk-a\n    name: main_disk\n  - id: sdb\n    name: sdb\n    type: disk\n    serial: disk-b\n    name: second_disk\n",
    )
    .unwrap();
    let names: Vec<_> = disks(&l).into_iter().map(|d| d.name.unwrap()).collect();
    assert_eq!(names, ["main_disk", "second_disk"]);
    assert_eq!(l.warnings.len(), 2, "{:?}", l.warnings);
    assert!(
        l.warnings[1].starts_with(
            "test.yaml:13:5: storage.config[1].name: key given twice (first on line 10)"
        ),
        "{:?}",
        l.warnings
    );

    // A partition's `offset` twice (preserve-bcache), in storage version 2.
    let l = load(
        "storage:\n  version: 2\n  config:\n  - {id: d, type: disk, ptable: gpt, serial: s}\n  - id: p1\n    type: partition\n    device: d\n    number: 1\n    offset: 1M\n    size: 1024M\n    offset: 2M\n",
    )
    .unwrap();
    let Item::Partition(p) = &l.config.storage.as_ref().unwrap().config[1] else {
        panic!()
    };
    assert_eq!(p.offset, Some(2 << 20));
    assert!(l.warnings[0].contains("storage.config[1].offset: key given twice (first on line 9)"));

    // A top-level key twice, far apart (reuse-msdos-partitions: `showtrace`).
    let l = load("showtrace: false\ninstall:\n  unmount: disabled\n\n\nshowtrace: true\n").unwrap();
    assert_eq!(l.config.showtrace, Some(true));
    assert_eq!(
        l.warnings,
        ["test.yaml:6:1: showtrace: key given twice (first on line 1): the value on line 6 is used, as curtin does"]
    );

    // `wipe` twice in each of two disks (simple-storage), flow and block mixed.
    let l = load(
        "storage:\n  version: 1\n  config:\n    - {id: sdb, type: disk, wipe: superblock, serial: b, wipe: zero}\n    - id: sdc\n      type: disk\n      wipe: superblock\n      serial: c\n      wipe: random\n",
    )
    .unwrap();
    let wipes: Vec<_> = disks(&l).into_iter().map(|d| d.wipe).collect();
    assert_eq!(wipes, [Some(Wipe::Zero), Some(Wipe::Random)]);
    assert!(
        l.warnings[0].starts_with(
            "test.yaml:4:58: storage.config[0].wipe: key given twice (first on line 4)"
        ),
        "{:?}",
        l.warnings
    );
    assert!(
        l.warnings[1].starts_with(
            "test.yaml:9:7: storage.config[1].wipe: key given twice (first on line 7)"
        ),
        "{:?}",
        l.warnings
    );
}

/// PyYAML's YAML 1.1: `yes`/`no`/`on`/`off` are booleans, `0644` is octal, `1e3` a string.
#[test]
fn scalars_mean_what_they_mean_to_curtin() {
    let l = load(
        "storage:\n  version: 1\n  config:\n    - {id: d, type: disk, serial: s, ptable: gpt, preserve: yes, grub_device: on}\n    - {id: p, type: partition, device: d, size: 1G, preserve: Off}\nverbosity: 0x3\nshowtrace: NO\n",
    )
    .unwrap();
    let s = l.config.storage.as_ref().unwrap();
    let Item::Disk(d) = &s.config[0] else {
        panic!()
    };
    assert!(d.preserve && d.grub_device);
    let Item::Partition(p) = &s.config[1] else {
        panic!()
    };
    assert!(!p.preserve);
    assert_eq!(l.config.verbosity, Some(3));
    assert_eq!(l.config.showtrace, Some(false));
    assert_eq!(l.merged["showtrace"], yaml_serde::Value::Bool(false));
}

/// `preserve` and `wipe` through curtin's `value_as_boolean`; `grub_device` by truthiness.
#[test]
fn storage_flags_are_read_with_curtins_value_as_boolean() {
    let l = load(
        "storage:\n  version: 1\n  config:\n    - {id: a, type: disk, serial: a, preserve: 'no', wipe: ''}\n    - {id: b, type: disk, serial: b, preserve: 'false', wipe: none, grub_device: 1}\n    - {id: c, type: disk, serial: c, preserve: 0, grub_device: 'false'}\n",
    )
    .unwrap();
    let d: Vec<_> = l
        .config
        .storage
        .as_ref()
        .unwrap()
        .disks()
        .cloned()
        .collect();
    // 'no' is a string that is not in curtin's false list: preserved.
    assert!(d[0].preserve);
    assert!(!d[1].preserve && !d[2].preserve);
    assert_eq!((d[0].wipe, d[1].wipe), (None, None));
    // `if item.get('grub_device')`: 1 and the string 'false' are both true.
    assert!(d[1].grub_device && d[2].grub_device && !d[0].grub_device);
}

/// iSCSI and multipath disks and a zfsroot format: "not supported yet" at validation; an
/// unknown key in a storage item or a source mapping is a warning (curtin ignores it), and the
/// source is used as given.
#[test]
fn unsupported_disks_and_unknown_item_keys() {
    let l = load(
        "storage:\n  version: 1\n  config:\n    - {id: a, type: disk, path: 'iscsi:192.0.2.1::3260:1:iqn.2024-01.test:t', ptable: gpt}\n    - {id: b, type: disk, serial: QM1, multipath: mpatha}\n    - {id: p, type: partition, device: b, size: 1G, colour: blue}\n    - {id: f, type: format, volume: p, fstype: zfsroot}\n",
    )
    .unwrap();
    let s = l.config.storage.as_ref().unwrap();
    let why: Vec<String> = s.config.iter().filter_map(|i| i.unsupported()).collect();
    assert_eq!(
        why,
        [
            "not supported yet: disk id=a on iSCSI (iscsi:192.0.2.1::3260:1:iqn.2024-01.test:t)",
            "not supported yet: disk id=b on multipath (mpatha)",
            "not supported yet: format id=f with fstype zfsroot (a ZFS pool for /)",
        ]
    );
    assert_eq!(
        l.warnings,
        ["test.yaml:6:61: storage.config[2].colour: unknown key, ignored (curtin ignores it too)"]
    );

    let l = load("sources: {img: {type: tgz, uri: 'http://h/r.tgz', sha265: abc}}\n").unwrap();
    assert_eq!(l.config.sources["img"].uri, "http://h/r.tgz");
    assert_eq!(
        l.warnings,
        ["test.yaml:1:59: sources.img.sha265: unknown key, ignored (curtin ignores it too)"]
    );
}

/// A digest of digits only is a number to YAML 1.1: the error says to quote it.
#[test]
fn an_unquoted_all_digit_digest_is_explained() {
    let e = err(&format!(
        "sources: {{r: {{type: tgz, uri: 'http://h/r.tgz', sha256: {}}}}}\n",
        "0".repeat(64)
    ));
    assert!(
        e.contains("sources.r.sha256: a digest of digits only is read as a number"),
        "{e}"
    );
    let l = load(&format!(
        "sources: {{r: {{type: tgz, uri: 'http://h/r.tgz', sha256: '{}'}}}}\n",
        "0".repeat(64)
    ))
    .unwrap();
    assert_eq!(
        l.config.sources["r"].sha256.as_deref(),
        Some(&*"0".repeat(64))
    );
}

/// Number keys of a stage's commands are numbers to PyYAML; mixed with strings curtin's
/// `sorted()` fails, so does validation.
#[test]
fn command_keys_that_are_numbers() {
    let l = load("stages: [mine]\nmine_commands: {10: 'echo b', 05: 'echo a'}\n").unwrap();
    assert!(l.config.commands["mine"].contains_key("5"));
    // The builtin stages all have a `builtin` key (curtin's CONFIG_BUILTIN) to sort beside.
    let e = err("late_commands: {10: 'echo b'}\n");
    assert!(
        e.contains("late_commands: the keys 10 (a number) and builtin cannot be sorted together"),
        "{e}"
    );
}
