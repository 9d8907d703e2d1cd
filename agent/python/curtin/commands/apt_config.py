"""curtin.commands.apt_config: debconf selections for the target (in-target through
deployer)."""

import glob
import os
import re

from .. import distro, paths, util
from ..log import LOG


def debconf_set_selections(selections, target=None):
    util.subp(['debconf-set-selections'], data=selections, target=target,
              capture=True)


def clean_cloud_init(target):
    """Remove the target's local cloud-init config (etc/cloud/cloud.cfg.d/*dpkg*)."""
    flist = glob.glob(paths.target_path(target, "/etc/cloud/cloud.cfg.d/*dpkg*"))
    LOG.debug("cleaning cloud-init config from: %s", flist)
    for dpkg_cfg in flist:
        os.unlink(dpkg_cfg)


CONFIG_CLEANERS = {'cloud-init': clean_cloud_init}


def dpkg_reconfigure(packages, target=None):
    unhandled = []
    to_config = []
    for pkg in packages:
        if pkg in CONFIG_CLEANERS:
            LOG.debug("unconfiguring %s", pkg)
            CONFIG_CLEANERS[pkg](target)
            to_config.append(pkg)
        else:
            unhandled.append(pkg)
    if len(unhandled):
        LOG.warning("The following packages were installed and preseeded, "
                    "but cannot be unconfigured: %s", unhandled)
    if len(to_config):
        util.subp(['dpkg-reconfigure', '--frontend=noninteractive'] +
                  sorted(to_config), data=None, target=target, capture=True)


def apply_debconf_selections(cfg, target=None):
    """`debconf_selections` (joined in key order) into the target's debconf, then the
    installed packages they name reconfigured."""
    selsets = cfg.get('debconf_selections')
    if not selsets:
        LOG.debug("debconf_selections was not set in config")
        return
    LOG.debug('Applying debconf selections')
    selections = '\n'.join([selsets[key] for key in sorted(selsets.keys())])
    debconf_set_selections(selections.encode() + b"\n", target=target)
    pkgs_cfgd = set()
    for _key, content in selsets.items():
        for line in content.splitlines():
            if line.startswith("#"):
                continue
            pkgs_cfgd.add(re.sub(r"[:\s].*", "", line))
    need_reconfig = pkgs_cfgd.intersection(distro.get_installed_packages(target))
    if len(need_reconfig) == 0:
        return
    dpkg_reconfigure(need_reconfig, target=target)
