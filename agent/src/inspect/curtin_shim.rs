//! SHIM until curtin_py lands: the "maas" helper is writing deployer's embedded curtin Python
//! package, which exposes `deployer::curtin_py::provides(module, symbol)` derived from its .py
//! files. Until the lead merges it, this stands in with the API packer-maas hooks use
//! (packer-maas.md §6). Delete this file and switch `hooks.rs` to `crate::curtin_py` then.

/// Does the embedded curtin package provide `symbol` in `module` (a function, class, constant
/// or submodule)? An empty `symbol` asks whether `module` itself exists.
pub fn provides(module: &str, symbol: &str) -> bool {
    let Some((_, names)) = API.iter().find(|(m, _)| *m == module) else {
        return false;
    };
    symbol.is_empty() || names.contains(&symbol)
}

const API: &[(&str, &[&str])] = &[
    (
        "curtin",
        &[
            "FEATURES",
            "__version__",
            "block",
            "commands",
            "config",
            "distro",
            "futil",
            "log",
            "paths",
            "util",
        ],
    ),
    (
        "curtin.util",
        &[
            "ChrootableTarget",
            "RunInChroot",
            "get_dd_images",
            "load_command_config",
            "load_command_environment",
            "subp",
        ],
    ),
    ("curtin.config", &["load_command_config", "load_config"]),
    ("curtin.paths", &["target_path"]),
    ("curtin.distro", &["DISTRO_NAMES", "get_distroinfo"]),
    ("curtin.log", &["DEBUG", "LOG", "basicConfig"]),
    ("curtin.futil", &["write_files"]),
    (
        "curtin.block",
        &[
            "_lsblock",
            "get_blockdev_for_partition",
            "get_devices_for_mp",
        ],
    ),
    ("curtin.commands", &["apt_config", "curthooks"]),
    ("curtin.commands.apt_config", &["apply_debconf_selections"]),
    (
        "curtin.commands.curthooks",
        &[
            "add_swap",
            "apply_networking",
            "builtin_curthooks",
            "centos_apply_network_config",
            "configure_iscsi",
            "configure_mdadm",
            "copy_crypttab",
            "copy_dname_rules",
            "copy_fstab",
            "disable_overlayroot",
            "disable_update_initramfs",
            "enable_update_initramfs",
            "handle_cloudconfig",
            "handle_pollinate_user_agent",
            "install_missing_packages",
            "setup_kernel_img_conf",
            "update_initramfs",
        ],
    ),
];
