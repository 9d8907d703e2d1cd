//! The keys each storage item type has: curtin's storage schema (`curtin/block/schemas.py`),
//! plus those deployer reads that the schema lacks. Any other key is ignored with a warning,
//! as curtin's block-meta ignores it (its `schema-validate` would refuse it).

/// Keys every item has.
const COMMON: &[&str] = &["id", "type"];

fn keys(kind: &str) -> &'static [&'static str] {
    match kind {
        "disk" => &[
            "device_id",
            "grub_device",
            "model",
            "multipath",
            "name",
            "nvme_controller",
            "path",
            "preserve",
            "ptable",
            "serial",
            "wipe",
            "wwn",
        ],
        "partition" => &[
            "attrs",
            "device",
            "flag",
            "grub_device",
            "multipath",
            "name",
            "number",
            "offset",
            "partition_name",
            "partition_type",
            "path",
            "preserve",
            "resize",
            "size",
            "uuid",
            "wipe",
        ],
        "format" => &[
            "extra_options",
            "fstype",
            "label",
            "name",
            "preserve",
            "uuid",
            "volume",
        ],
        "mount" => &[
            "device", "freq", "fstype", "options", "passno", "path", "spec",
        ],
        "lvm_volgroup" => &["devices", "name", "preserve", "uuid"],
        "lvm_partition" => &["name", "path", "preserve", "size", "volgroup", "wipe"],
        "raid" => &[
            "container",
            "devices",
            "mdname",
            "metadata",
            "name",
            "path",
            "preserve",
            "ptable",
            "raidlevel",
            "spare_devices",
            "wipe",
        ],
        "bcache" => &[
            "backing_device",
            "cache_device",
            "cache_mode",
            "name",
            "path",
            "preserve",
            "ptable",
            "wipe",
        ],
        "dm_crypt" => &[
            "cipher",
            "dm_name",
            "key",
            "keyfile",
            "keysize",
            "options",
            "path",
            "preserve",
            "recovery_keyfile",
            "volume",
            "wipe",
        ],
        "dasd" => &[
            "blocksize",
            "device_id",
            "disk_layout",
            "label",
            "mode",
            "name",
            "preserve",
        ],
        "nvme_controller" => &["tcp_addr", "tcp_port", "transport"],
        "zfs" => &["pool", "properties", "volume"],
        "zpool" => &[
            "default_features",
            "fs_properties",
            "mountpoint",
            "pool",
            "pool_properties",
            "vdevs",
        ],
        // `device` and `image` (curtin's newer types): not checked.
        _ => &[],
    }
}

/// The keys of an item of type `kind` that neither curtin nor deployer knows.
pub fn unknown(kind: &str, item: &yaml_serde::Mapping) -> Vec<String> {
    let known = keys(kind);
    if known.is_empty() {
        return vec![];
    }
    item.keys()
        .map(crate::issue::key_string)
        .filter(|k| !COMMON.contains(&k.as_str()) && !known.contains(&k.as_str()))
        .collect()
}
