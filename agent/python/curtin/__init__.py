"""deployer's stand-in for curtin's Python package.

MAAS custom images (packer-maas) ship Python hooks that import curtin. When no curtin package
is available (no MAAS installer archive, or one without it), deployer unpacks this one and puts
it on the hooks' PYTHONPATH. It offers the names those hooks use, with curtin's signatures; the
heavy steps (builtin curthooks, networking, fstab, initramfs, in-target) run deployer's own
implementation through its `curtin` entry point, so there is one implementation of each.

Standard library only, plus PyYAML where curtin itself uses it (config loading and dumping).
"""

# Kept equal to curtin's: the text after it on the kernel command line goes to the target.
KERNEL_CMDLINE_COPY_TO_INSTALL_SEP = "---"

# The capability flags hooks probe (curtin's names, for what deployer supports).
FEATURES = [
    'CENTOS_APPLY_NETWORK_CONFIG',
    'CENTOS_CURTHOOK_SUPPORT',
    'NETWORK_CONFIG_V1',
    'REPORTING_EVENTS_WEBHOOK',
    'STORAGE_CONFIG_V1',
    'STORAGE_CONFIG_V1_DD',
    'APT_CONFIG_V1',
    'HAS_VERSION_MODULE',
    'FSTAB_DEFAULT_FSCK_ON_BLK',
]

__version__ = "23.1.1"

# This package is deployer's, not curtin's: hooks and tests can tell the two apart.
DEPLOYER_COMPAT = True
