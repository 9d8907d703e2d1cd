"""curtin.commands.curthooks: the builtin curthooks and the single steps hooks call.

builtin_curthooks, apply_networking, copy_fstab and update_initramfs run deployer's own
steps (`curtin curthooks --step ...`); the small file moves are done here as curtin does them.
"""

import glob
import os
import platform
import shutil

from .. import distro, futil, paths, util
from .._deployer import run_step
from ..distro import DISTROS
from ..log import LOG

KERNEL_IMG_CONF_TEMPLATE = """# Kernel image management overrides
# See kernel-img.conf(5) for details
do_symlinks = yes
do_bootloader = {bootloader}
do_initrd = yes
link_in_boot = {inboot}
"""


def builtin_curthooks(cfg, target, state):
    """deployer's builtin curthooks on `target` with this (possibly amended) config."""
    LOG.info('Running deployer builtin curthooks')
    run_step('builtin', target, state=state, cfg=cfg)


def disable_overlayroot(cfg, target):
    disable = cfg.get('disable_overlayroot', True)
    local_conf = os.path.sep.join([target, 'etc/overlayroot.local.conf'])
    if disable and os.path.exists(local_conf):
        LOG.debug("renaming %s to %s", local_conf, local_conf + ".old")
        shutil.move(local_conf, local_conf + ".old")


def _update_initramfs_tools(machine=None):
    tools = ['update-initramfs']
    if not machine:
        machine = platform.machine()
    if machine == 's390x':
        tools.append('zipl')
    elif machine == 'aarch64':
        tools.append('flash-kernel')
    return tools


def disable_update_initramfs(cfg, target, machine=None):
    """Divert update-initramfs (and flash-kernel/zipl) in the target to a no-op."""
    with util.ChrootableTarget(target) as in_chroot:
        for tool in _update_initramfs_tools(machine=machine):
            found = util.which(tool, target=target)
            if found:
                LOG.debug('Diverting original %s in target.', tool)
                rename = found + '.curtin-disabled'
                in_chroot.subp(['dpkg-divert', '--add', '--rename',
                                '--divert', rename, found])
                util.write_file(target + found,
                                content="#!/bin/true\n# diverted by curtin",
                                mode=0o755)


def update_initramfs_is_disabled(target):
    if not util.which('dpkg-divert', target=target):
        return False
    with util.ChrootableTarget(target) as in_chroot:
        out, _err = in_chroot.subp(['dpkg-divert', '--list'], capture=True)
    return any(d.endswith('.curtin-disabled') for d in out.splitlines())


def enable_update_initramfs(cfg, target, machine=None):
    """Undo disable_update_initramfs."""
    if not update_initramfs_is_disabled(target):
        return
    with util.ChrootableTarget(target) as in_chroot:
        for tool in _update_initramfs_tools(machine=machine):
            LOG.info('Restoring %s in target for initrd updates.', tool)
            found = util.which(tool, target=target)
            if not found:
                continue
            util.del_file(target + found)
            in_chroot.subp(['dpkg-divert', '--rename', '--remove', found])


def update_initramfs(target=None, all_kernels=False):
    """Create or update the initramfs of every kernel in the target's /boot (deployer's
    initramfs step); nothing while update-initramfs is diverted."""
    target = paths.target_path(target)
    if update_initramfs_is_disabled(target):
        return
    run_step('update-initramfs', target)


def install_missing_packages(cfg, target, osfamily=DISTROS.debian):
    """deployer installs no packages into the target: the image must carry what its storage,
    network and bootloader need (deployer's steps name a missing tool and its package)."""
    LOG.info("install_missing_packages: deployer installs no packages; "
             "the image must carry the tools it needs")


def configure_iscsi(cfg, state_etcd, target, osfamily=DISTROS.debian):
    nodes = os.path.join(state_etcd, "nodes")
    if not os.path.exists(nodes):
        return
    LOG.info('Iscsi configuration found, enabling service')
    if osfamily == DISTROS.redhat:
        copy_iscsi_conf(nodes, target, target_nodes_dir='var/lib/iscsi/nodes')
        with util.ChrootableTarget(target) as in_chroot:
            in_chroot.subp(['chkconfig', 'iscsid', 'on'])
    elif osfamily == DISTROS.debian:
        copy_iscsi_conf(nodes, target)
    else:
        raise ValueError('Unknown iscsi requirements for distro: %s' % osfamily)


def copy_iscsi_conf(nodes_dir, target, target_nodes_dir='etc/iscsi/nodes'):
    if not nodes_dir:
        LOG.warning("nodes directory must be specified, not copying")
        return
    tdir = os.path.sep.join([target, target_nodes_dir])
    if not os.path.exists(tdir):
        shutil.copytree(nodes_dir, tdir)
    else:
        for ndir in os.listdir(nodes_dir):
            shutil.copytree(os.path.join(nodes_dir, ndir), os.path.join(tdir, ndir))


def configure_mdadm(cfg, state_etcd, target, osfamily=DISTROS.debian):
    mdadm_location = os.path.join(state_etcd, "mdadm.conf")
    if not os.path.exists(mdadm_location):
        return
    conf_map = {DISTROS.debian: 'etc/mdadm/mdadm.conf',
                DISTROS.redhat: 'etc/mdadm.conf'}
    if osfamily not in conf_map:
        raise ValueError('Unknown mdadm conf mapping for distro: %s' % osfamily)
    LOG.info('Mdadm configuration found, enabling service')
    dest = paths.target_path(target, conf_map[osfamily])
    util.ensure_dir(os.path.dirname(dest))
    shutil.copy(mdadm_location, dest)
    if osfamily == DISTROS.debian:
        with util.ChrootableTarget(target) as in_chroot:
            in_chroot.subp(['dpkg-reconfigure', '--frontend=noninteractive', 'mdadm'])


def copy_mdadm_conf(mdadm_conf, target):
    if not mdadm_conf:
        LOG.warning("mdadm config must be specified, not copying")
        return
    shutil.copy(mdadm_conf, os.path.sep.join([target, 'etc/mdadm/mdadm.conf']))


def copy_fstab(fstab, target):
    """OUTPUT_FSTAB's lines into the target's etc/fstab under the distro header (deployer's
    fstab step)."""
    if not fstab:
        LOG.warning("fstab variable not in state, not copying fstab")
        return
    run_step('writing-etc-fstab', target, state={'fstab': fstab})


def copy_crypttab(crypttab, target):
    if not crypttab:
        LOG.warning("crypttab config must be specified, not copying")
        return
    shutil.copy(crypttab, os.path.sep.join([target, 'etc/crypttab']))


def copy_interfaces(interfaces, target):
    if not interfaces or not os.path.exists(interfaces):
        LOG.warning("no interfaces file to copy!")
        return
    shutil.copy(interfaces, os.path.sep.join([target, 'etc/network/interfaces']))


def copy_dname_rules(rules_d, target):
    if not rules_d:
        LOG.warning("no udev rules directory to copy")
        return
    target_rules_dir = paths.target_path(target, "etc/udev/rules.d")
    util.ensure_dir(target_rules_dir)
    for rule in os.listdir(rules_d):
        shutil.copy(os.path.join(rules_d, rule), os.path.join(target_rules_dir, rule))


def add_swap(cfg, target, fstab):
    """The swap file and its line in `fstab` (deployer's setting-up-swap step, curtin's sizes)."""
    if 'swap' in cfg and not cfg.get('swap'):
        LOG.debug("disabling 'add_swap' due to config")
        return
    if not fstab:
        LOG.warning("fstab variable not in state, no swap file")
        return
    run_step('setting-up-swap', target, state={'fstab': fstab},
             cfg={'swap': cfg.get('swap')} if 'swap' in cfg else {})


def setup_kernel_img_conf(target):
    """etc/kernel-img.conf for releases before 19.10 (curtin's values)."""
    release = distro.lsb_release(target=target).get('release', '')
    try:
        if tuple(map(int, release.split('.'))) >= (19, 10):
            return
    except ValueError:
        return
    conf = {'bootloader': 'no', 'inboot': 'yes'}
    if platform.machine() == 's390x':
        conf['bootloader'] = 'yes'
    if util.get_platform_arch() in ['amd64', 'i386']:
        conf['inboot'] = 'no'
    util.write_file(os.path.sep.join([target, '/etc/kernel-img.conf']),
                    content=KERNEL_IMG_CONF_TEMPLATE.format(**conf))


def apply_networking(target, state):
    """The config's network for the deployed OS (deployer's network step: cloud-init
    passthrough when the target's cloud-init takes v2, else rendered files)."""
    netconf = state.get('network_config')

    def is_valid_src(infile):
        if not infile or not os.path.exists(infile):
            return False
        with open(infile, 'r') as fp:
            return len(fp.read().split('\n')) > 1

    if is_valid_src(netconf):
        LOG.info("applying network_config")
        run_step('apply-networking-config', target, state=state)
    else:
        LOG.debug("copying interfaces")
        copy_interfaces(state.get('interfaces'), target)


def centos_apply_network_config(netcfg, target=None):
    """Network config for RHEL-family targets: the image's ifcfg-* (but lo) removed, the
    config handed to the target's cloud-init (deployer's network step)."""
    if not netcfg:
        return
    target = paths.target_path(target)
    for ifcfg in glob.glob(paths.target_path(
            target, 'etc/sysconfig/network-scripts') + '/ifcfg-*'):
        if os.path.basename(ifcfg) != "ifcfg-lo":
            util.del_file(ifcfg)
    import tempfile
    from .. import config as _config
    fd, path = tempfile.mkstemp(prefix='deployer-net-')
    try:
        with os.fdopen(fd, 'w') as fp:
            fp.write(_config.dump_config({'network': netcfg}))
        run_step('apply-networking-config', target,
                 state={'network_config': path})
    finally:
        os.unlink(path)


redhat_upgrade_cloud_init = centos_apply_network_config


def redhat_apply_selinux_autorelabel(target):
    open(paths.target_path(target, '.autorelabel'), 'a').close()


def inject_pollinate_user_agent_config(ua_cfg, target):
    if not isinstance(ua_cfg, dict):
        raise ValueError('ua_cfg is not a dictionary: %s' % ua_cfg)
    content = "\n".join(["%s/%s # written by curtin" % (k, v)
                         for k, v in ua_cfg.items()]) + "\n"
    util.write_file(paths.target_path(target, '/etc/pollinate/add-user-agent'),
                    content=content)


def get_maas_version(endpoint):
    """MAAS's version from <endpoint's host>/MAAS/api/version/ (None on any failure)."""
    import json
    from urllib import parse, request
    if not endpoint:
        return None
    try:
        u = parse.urlparse(endpoint)
        url = "%s://%s/MAAS/api/version/" % (u.scheme, u.netloc)
        with request.urlopen(url, timeout=10) as resp:
            return json.loads(resp.read().decode())
    except Exception as e:
        LOG.warning("Failed to query MAAS version via %s: %s", endpoint, e)
        return None


def handle_pollinate_user_agent(cfg, target):
    """etc/pollinate/add-user-agent with the curtin (and MAAS) version, when the target has
    pollinate."""
    if not util.which('pollinate', target=target):
        return
    pcfg = cfg.get('pollinate')
    if not isinstance(pcfg, dict):
        pcfg = {'user_agent': {}}
    uacfg = pcfg.get('user_agent', {})
    if uacfg is False:
        return
    from .. import version
    uacfg['curtin'] = version.version_string()
    maas = cfg.get('reporting', {}).get('maas', None)
    if maas:
        v = get_maas_version(maas.get('endpoint'))
        if v:
            uacfg['maas'] = v['version']
    inject_pollinate_user_agent_config(uacfg, target)


def handle_cloudconfig(cfg, base_dir=None):
    """Each `cloudconfig` entry written to <base_dir>/95-cloudconfig-<key>.cfg (its `path`
    is ignored, as curtin ignores it)."""
    if not isinstance(cfg, dict):
        raise ValueError("cloudconfig configuration is not in dict format")
    for cfgname, cfgvalue in cfg.items():
        cfgpath = "95-cloudconfig-%s.cfg" % cfgname
        if 'path' in cfgvalue:
            LOG.warning("cloudconfig ignoring 'path' key in config")
        cfgvalue['path'] = cfgpath
    futil.write_files(cfg, base_dir)
