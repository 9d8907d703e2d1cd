//! Every input error of the generator names its key: one case per check.

use preseed::generate::{generate, parse_machine, parse_resource};

const MACHINE: &str = r#"
system_id: 4y3h7n
hostname: node1
architecture: amd64/generic
boot_mode: uefi
metadata_url: http://10.0.0.2:5248/MAAS/metadata/
token: {consumer_key: ck, token_key: tk, token_secret: ts}
disks:
  - {name: sda, serial: QM00001, size: 100G, boot: true}
interfaces:
  - name: eth0
    mac: "52:54:00:12:34:56"
    addresses:
      - {mode: static, cidr: 10.0.0.0/24, ip: 10.0.0.10, gateway: 10.0.0.1}
"#;

const IMAGE: &str = r#"
name: custom/jammy-custom
architecture: amd64/generic
base_image: ubuntu/jammy
filetype: ddgz
url: http://10.0.0.2/root-dd.gz
"#;

fn err(machine: &str, image: &str) -> String {
    let m = match parse_machine("machine.yaml", machine) {
        Ok(m) => m,
        Err(e) => return e.to_string(),
    };
    let r = match parse_resource("image.yaml", image) {
        Ok(r) => r,
        Err(e) => return e.to_string(),
    };
    match generate(&m, &r) {
        Ok(_) => panic!("expected an error for\n{machine}\n{image}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn base_inputs_generate() {
    let m = parse_machine("m", MACHINE).unwrap();
    let r = parse_resource("i", IMAGE).unwrap();
    generate(&m, &r).unwrap();
}

#[test]
fn machine_errors_name_the_key() {
    let disk = "  - {name: sda, serial: QM00001, size: 100G, boot: true}";
    let cases: &[(&str, &str, &str)] = &[
        ("system_id: 4y3h7n", "system_id: 'a b'", "machine: system_id:"),
        ("hostname: node1", "hostname: ''", "machine: hostname:"),
        ("boot_mode: uefi", "boot_mode: efi", "boot_mode: unknown variant `efi`"),
        ("metadata_url: http://", "metadata_url: ftp://", "machine: metadata_url:"),
        ("architecture: amd64/generic", "architecture: amd64", "machine: architecture:"),
        ("token_secret: ts}", "token_secret: ''}", "machine: token.token_secret:"),
        ("token_secret: ts}", "}", "token: missing field `token_secret`"),
        (disk, "", "machine: disks: a machine needs at least one disk"),
        (disk, "  - {name: sda, size: 100G}", "machine: disks[0]: disk sda needs a serial, wwn or path"),
        (disk, "  - {name: sda, serial: A, size: 1M}", "machine: disks[0].size:"),
        (disk, "  - {name: sda, serial: A, size: 100G, block_size: 1024}", "disks[0].block_size"),
        (disk, &format!("{disk}\n  - {{name: sda, serial: B, size: 1G}}"), "disks[1].name: disk sda is listed twice"),
        (disk, &format!("{disk}\n  - {{name: sdb, serial: QM00001, size: 1G}}"), "disks[1].serial: disks sda and sdb have the same model/serial"),
        (disk, &format!("{disk}\n  - {{name: sdb, serial: B, size: 1G, boot: true}}"), "disks: only one disk may have boot: true"),
        (disk, "  - {name: sda, serial: A, size: 3G, boot: true}", "disks[0].size: boot disk sda is too small"),
        (disk, "  - {name: sda, serial: A, size: 100G}\nroot_size: 1G", "root_size: must be at least 3 GiB"),
        (disk, "  - {name: sda, serial: A, size: 100G}\nroot_size: 200G", "root_size: the partitions on disk sda need"),
        (disk, "  - {name: sda, serial: A, size: 100G}\nboot_size: 100M", "boot_size: must be at least 512 MiB"),
        (disk, "  - {name: sda, serial: A, size: 100G}\nlv_size: 10G", "lv_size: only used with layout: lvm"),
        (disk, "  - {name: sda, serial: A, size: 100G}\nlayout: lvm\nlv_size: 1T", "lv_size: 1099511627776 bytes does not fit in volume group vgroot"),
        (disk, "  - {name: sda, serial: A, size: 100G}\nlayout: custom", "partitions: layout: custom needs a partitions list"),
        (disk, "  - {name: sda, serial: A, size: 100G}\nlayout: custom\npartitions: [{disk: sdx}]", "partitions[0].disk: no disk named \"sdx\""),
        (disk, "  - {name: sda, serial: A, size: 100G}\nlayout: custom\npartitions: [{disk: sda, fstype: zfs}]", "partitions[0].fstype: unknown fstype \"zfs\""),
        (disk, "  - {name: sda, serial: A, size: 100G}\nlayout: custom\npartitions: [{disk: sda, mount: /}]", "partitions[0].mount: a mount needs an fstype"),
        (disk, "  - {name: sda, serial: A, size: 100G}\nlayout: custom\npartitions: [{disk: sda, fstype: ext4, mount: srv}]", "partitions[0].mount: \"srv\" is not an absolute path"),
        (disk, "  - {name: sda, serial: A, size: 100G}\nlayout: custom\npartitions: [{disk: sda, fstype: ext4, mount: /}, {disk: sda, fstype: ext4, mount: /}]", "partitions[1].mount: / is mounted twice"),
        (disk, "  - {name: sda, serial: A, size: 100G}\nlayout: custom\npartitions: [{disk: sda}, {disk: sda}]", "only one partition may take the rest"),
        (disk, "  - {name: sda, serial: A, size: 100G}\nlayout: flat\npartitions: [{disk: sda}]", "partitions: only used with layout: custom"),
        (disk, "  - {name: sda, serial: A, size: 100G}\nlayout: flat\ncache_mode: writeback", "cache_mode: only used with layout: bcache"),
        (disk, "  - {name: sda, serial: A, size: 100G}\n  - {name: sdb, serial: B, size: 10G, ssd: true}\nlayout: bcache\ncache_size: 1G\ncache_no_part: true", "cache_size: Cannot use cache_size and cache_no_part at the same time."),
        (disk, "  - {name: sda, serial: A, size: 100G}\nlayout: bcache\ncache_device: sdz", "cache_device: no disk named \"sdz\""),
        (disk, "  - {name: sda, serial: A, size: 100G}\nlayout: bcache\ncache_device: sda", "cache_device: the cache cannot be the boot disk"),
        (disk, "  - {name: sda, serial: A, size: 8G}\nlayout: vmfs6", "disks[0].size: Boot disk must be at least 10Gb."),
        (disk, "  - {name: sda, serial: A, size: 20G}\nlayout: vmfs7", "disks[0].size: Boot disk must be at least 32Gb."),
        (disk, "  - {name: sda, serial: A, size: 100G}\nlayout: flat\nraids: [{name: md0, level: 1}]", "raids: only used with layout: custom"),
        (disk, "  - {name: sda, serial: A, size: 100G}\nlayout: custom\npartitions: [{disk: sda, size: 1G, raid: md0}, {disk: sda, size: 1G, raid: md0}]\nraids: [{name: md0, level: 7}]", "raids[0].level: raid level 7 is not one of 0, 1, 5, 6, 10"),
        (disk, "  - {name: sda, serial: A, size: 100G}\nlayout: custom\npartitions: [{disk: sda, size: 1G, raid: md0}]\nraids: [{name: md0, level: 1}]", "raids[0].name: raid md0 level 1 needs at least 2 partitions with `raid: md0`, got 1"),
        (disk, "  - {name: sda, serial: A, size: 100G}\nlayout: custom\npartitions: [{disk: sda, size: 1G, raid: md9}]", "partitions[0].raid: no array named \"md9\" in raids"),
        (disk, "  - {name: sda, serial: A, size: 100G}\nlayout: custom\npartitions: [{disk: sda, size: 1G, raid: md0, fstype: ext4}, {disk: sda, size: 1G, raid: md0}]\nraids: [{name: md0, level: 1}]", "partitions[0].raid: a raid member has no fstype or encrypt of its own"),
        (disk, "  - {name: sda, serial: A, size: 100G}\nlayout: custom\npartitions: [{disk: sda, fstype: ext4, mount: /, encrypt: {}}]", "partitions[0].encrypt: needs exactly one of key or keyfile"),
        ("52:54:00:12:34:56", "52:54:00:12:34", "interfaces[0].mac: \"52:54:00:12:34\" is not a MAC address"),
        ("ip: 10.0.0.10,", "ip: 10.1.0.10,", "interfaces[0].addresses[0].ip: 10.1.0.10 is not in 10.0.0.0/24"),
        ("ip: 10.0.0.10,", "ip: ten,", "interfaces[0].addresses[0].ip: \"ten\" is not an IP address"),
        ("ip: 10.0.0.10,", "", "interfaces[0].addresses[0].ip: a static address needs an ip"),
        ("cidr: 10.0.0.0/24,", "cidr: 10.0.0.0/40,", "interfaces[0].addresses[0].cidr: \"10.0.0.0/40\" has a bad prefix length"),
        ("cidr: 10.0.0.0/24,", "", "interfaces[0].addresses[0].cidr: a static address needs a cidr"),
        ("gateway: 10.0.0.1", "gateway: 10.0.1.1", "interfaces[0].addresses[0].gateway: 10.0.1.1 is not in 10.0.0.0/24"),
        ("mode: static", "mode: dhcp", "interfaces[0].addresses[0].ip: only used with mode: static"),
        ("mode: static", "mode: auto", "unknown variant `auto`"),
        ("  - name: eth0", "  - name: eth0/1", "interfaces[0].name:"),
    ];
    for (from, to, want) in cases {
        assert!(MACHINE.contains(from), "{from}");
        let got = err(&MACHINE.replacen(from, to, 1), IMAGE);
        assert!(
            got.contains(want),
            "replacing {from:?} with {to:?}: got {got:?}, want {want:?}"
        );
    }
}

#[test]
fn virtual_interface_errors_name_the_key() {
    let cases: &[(&str, &str)] = &[
        ("bonds: [{name: bond0, members: [eth9], mode: 802.3ad}]", "bonds[0].members: no interface named \"eth9\""),
        ("bonds: [{name: bond0, members: [], mode: 802.3ad}]", "bonds[0].members: a bond needs members"),
        ("bonds: [{name: bond0, members: [eth0], mode: lacp}]", "bonds[0].mode: unknown bond mode \"lacp\""),
        ("bonds: [{name: bond0, members: [eth0], mode: 802.3ad, params: {speed: 10}}]", "bonds[0].params.speed: unknown bond parameter"),
        ("bonds: [{name: bond0, members: [eth0], mode: 802.3ad, params: {xmit-hash-policy: l2}}]", "bonds[0].params.xmit-hash-policy: unknown hash policy"),
        ("bonds: [{name: bond0, members: [eth0], mode: 802.3ad, params: {lacp-rate: quick}}]", "bonds[0].params.lacp-rate: \"quick\" is not fast or slow"),
        ("bonds: [{name: eth0, members: [eth0], mode: 802.3ad}]", "bonds[0].name: interface eth0 is defined twice"),
        ("bonds: [{name: bond0, members: [eth0], mode: 802.3ad}, {name: bond1, members: [eth0], mode: 802.3ad}]", "bonds[1].members: eth0 is already a member of bond0"),
        ("vlans: [{link: eth9, id: 10}]", "vlans[0].link: no interface named \"eth9\""),
        ("vlans: [{link: eth0, id: 5000}]", "vlans[0].id: 5000 is not a VLAN id"),
        ("bridges: [{name: br0, members: []}]", "bridges[0].members: a bridge needs members"),
        ("bridges: [{name: br0, members: [br1]}, {name: br1, members: [br0]}]", "interfaces depend on each other in a cycle"),
        ("bridges: [{name: br0, members: [eth0], mac: nope}]", "bridges[0].mac: \"nope\" is not a MAC address"),
    ];
    for (extra, want) in cases {
        let got = err(&format!("{MACHINE}{extra}\n"), IMAGE);
        assert!(got.contains(want), "{extra}: got {got:?}, want {want:?}");
    }
}

#[test]
fn image_errors_name_the_key() {
    let cases: &[(&str, &str, &str)] = &[
        ("url: http://10.0.0.2/root-dd.gz", "", "image: url: missing"),
        (
            "url: http://10.0.0.2/root-dd.gz",
            "url: ftp://x/y",
            "image: url: \"ftp://x/y\" must be an http",
        ),
        (
            "url: http://10.0.0.2/root-dd.gz",
            "url: dd-gz:http://x/y",
            "image: url: \"dd-gz:http://x/y\" must be",
        ),
        (
            "filetype: ddgz",
            "filetype: ddgz\nsha256: abc",
            "image: sha256: \"abc\" is not 64 hex digits",
        ),
        (
            "name: custom/jammy-custom",
            "name: ''",
            "image: name: missing",
        ),
        (
            "name: custom/jammy-custom",
            "name: custom/a/b",
            "image: name: \"custom/a/b\" must be <os>/<name>",
        ),
        (
            "name: custom/jammy-custom",
            "name: custom/noble",
            "image: name: noble is a reserved name",
        ),
        (
            "name: custom/jammy-custom",
            "name: custom/ubuntu",
            "image: name: ubuntu is a reserved name",
        ),
        (
            "base_image: ubuntu/jammy",
            "base_image: ubuntu/",
            "base_image: a base image must follow the format",
        ),
        (
            "base_image: ubuntu/jammy",
            "base_image: centos/eight",
            "base_image: please select a valid base image OS and version",
        ),
        (
            "base_image: ubuntu/jammy",
            "base_image: custom/foo",
            "valid non-custom OS type base image: custom is invalid",
        ),
        (
            "name: custom/jammy-custom",
            "name: rhel/9",
            "image: filetype: rhel images must be root tarballs",
        ),
        (
            "filetype: ddgz",
            "filetype: ddgz\ncolour: red",
            "unknown field `colour`",
        ),
        (
            "filetype: ddgz",
            "filetype: ddgz\nsize: big",
            "image.yaml:6:7: size: invalid type",
        ),
    ];
    for (from, to, want) in cases {
        assert!(IMAGE.contains(from), "{from}");
        let got = err(MACHINE, &IMAGE.replacen(from, to, 1));
        assert!(
            got.contains(want),
            "replacing {from:?} with {to:?}: got {got:?}, want {want:?}"
        );
    }
}

#[test]
fn ol_base_warns_like_maas() {
    let m = parse_machine("m", MACHINE).unwrap();
    let r = parse_resource("i", &IMAGE.replace("ubuntu/jammy", "ol/8")).unwrap();
    let g = generate(&m, &r).unwrap();
    assert!(
        g.checked.warnings[0].starts_with("Custom network configuration is not supported on ol/8")
    );
    let merged = g.merged();
    assert_eq!(merged["network"]["version"], yaml_serde::Value::from(1));
    assert!(merged.get("apt").is_none());
    let late = merged["late_commands"].as_mapping().unwrap();
    assert!(late.contains_key("98-validate-custom-image-has-cloud-init"));
    assert!(!late.contains_key("99-validate-custom-image-has-netplan"));
}

#[test]
fn json_inputs_work_and_errors_name_the_key() {
    let machine = r#"{"system_id": "4y3h7n", "hostname": "node1", "architecture": "amd64/generic",
        "boot_mode": "bios", "metadata_url": "http://10.0.0.2:5248/MAAS/metadata/",
        "token": {"consumer_key": "ck", "token_key": "tk", "token_secret": "ts"},
        "disks": [{"name": "sda", "serial": "QM00001", "size": 21474836480, "boot": true}],
        "interfaces": [{"name": "eth0", "mac": "52:54:00:12:34:56", "addresses": [{"mode": "dhcp4"}]}]}"#;
    let image = r#"{"name": "custom/r9", "architecture": "amd64/generic", "base_image": "rhel/9",
        "filetype": "tgz", "url": "http://10.0.0.2/root.tgz"}"#;
    let m = parse_machine("machine.json", machine).unwrap();
    let r = parse_resource("image.json", image).unwrap();
    let g = generate(&m, &r).unwrap();
    assert_eq!(g.source, "http://10.0.0.2/root.tgz");
    let e = parse_machine(
        "machine.json",
        &machine.replace("\"size\": 21474836480", "\"size\": -1"),
    )
    .unwrap_err()
    .to_string();
    assert!(e.starts_with("machine.json:4:64: disks[0].size:"), "{e}");
}
