"""The target's distro and family, as curtin.distro reads them (os-release, then
centos-release / redhat-release)."""

import os
import re
import textwrap
from collections import namedtuple

from .log import LOG
from .paths import target_path
from .util import load_file, load_os_release

DistroInfo = namedtuple('DistroInfo', ('variant', 'family'))
# curtin's names but 'almalinux': packer-maas's Alma hook hands the whole install to
# builtin_curthooks when curtin knows Alma, and deployer's builtin hooks are for Debian and
# Ubuntu; without the name the hook takes its own path (Alma is then 'rhel' by ID_LIKE).
DISTRO_NAMES = ['arch', 'centos', 'debian', 'fedora', 'freebsd', 'gentoo',
                'ol', 'opensuse', 'redhat', 'rhel', 'sles', 'suse', 'ubuntu',
                'rocky', 'mariner']


def distro_enum(*distros):
    return namedtuple('Distros', distros)(*distros)


DISTROS = distro_enum(*DISTRO_NAMES)

OS_FAMILIES = {
    DISTROS.debian: [DISTROS.debian, DISTROS.ubuntu],
    DISTROS.redhat: [DISTROS.centos, DISTROS.fedora, DISTROS.ol,
                     DISTROS.redhat, DISTROS.rhel, DISTROS.rocky,
                     DISTROS.mariner],
    DISTROS.gentoo: [DISTROS.gentoo],
    DISTROS.freebsd: [DISTROS.freebsd],
    DISTROS.suse: [DISTROS.opensuse, DISTROS.sles, DISTROS.suse],
    DISTROS.arch: [DISTROS.arch],
}

DISTRO_TO_OSFAMILY = {variant: family for family, variants in OS_FAMILIES.items()
                      for variant in variants}


def name_to_distro(distname):
    """The DISTROS entry for a name; ValueError for an unknown one."""
    return DISTROS[DISTROS.index(distname)]


def os_release(target=None):
    data = {}
    path = target_path(target, 'etc/os-release')
    if os.path.exists(path):
        data = load_os_release(load_file(path))
    if not data:
        for relfile in [target_path(target, rel) for rel in
                        ['etc/centos-release', 'etc/redhat-release']]:
            data = _parse_redhat_release(release_file=relfile, target=target)
            if data:
                break
    return data


def _parse_redhat_release(release_file=None, target=None):
    if not release_file:
        release_file = target_path(target, 'etc/redhat-release')
    if not os.path.exists(release_file):
        return {}
    text = load_file(release_file)
    match = re.match(r'(?P<name>.+) release (?P<version>[\d\.]+) '
                     r'\((?P<codename>[^)]+)\)', text)
    if not match:
        return {}
    group = match.groupdict()
    group['name'] = group['name'].lower().partition(' linux')[0]
    if group['name'] == 'red hat enterprise':
        group['name'] = 'redhat'
    return {'ID': group['name'], 'VERSION_ID': group['version'],
            'VERSION_CODENAME': group['codename']}


def get_distroinfo(target=None):
    """(variant, family) of the target: os-release ID, else the first known ID_LIKE word;
    ValueError when neither is known."""
    rel = os_release(target=target)
    name = rel.get('ID', '')
    try:
        variant = name_to_distro(name)
    except ValueError:
        for like in rel.get("ID_LIKE", "").split():
            try:
                variant = name_to_distro(like)
                break
            except ValueError:
                pass
        else:
            raise ValueError("Unknown distro: %s" % name)
    return DistroInfo(variant, DISTRO_TO_OSFAMILY.get(variant))


def get_distro(target=None):
    return get_distroinfo(target=target).variant


def get_osfamily(target=None):
    return get_distroinfo(target=target).family


def lsb_release(target=None):
    """codename, description, id and release, from the target's os-release."""
    rel = os_release(target=target)
    return {'codename': rel.get('VERSION_CODENAME', ''),
            'description': rel.get('PRETTY_NAME', ''),
            'id': rel.get('NAME', rel.get('ID', '')),
            'release': rel.get('VERSION_ID', '')}


def is_ubuntu_core(target=None):
    return (os.path.exists(target_path(target, 'system-data/var/lib/snapd')) or
            os.path.exists(target_path(target, 'snaps')))


def is_centos(target=None):
    return os.path.exists(target_path(target, 'etc/centos-release'))


def is_rhel(target=None):
    return os.path.exists(target_path(target, 'etc/redhat-release'))


def get_installed_packages(target=None):
    """Names of the packages dpkg knows as installed in the target (empty without dpkg)."""
    status = target_path(target, 'var/lib/dpkg/status')
    pkgs = set()
    if not os.path.exists(status):
        return pkgs
    name = None
    for line in load_file(status).splitlines():
        if line.startswith('Package: '):
            name = line.split(':', 1)[1].strip()
        elif line.startswith('Status: ') and name:
            if line.split()[-1] == 'installed':
                pkgs.add(name)
    return pkgs


def has_pkg_installed(pkg, target=None):
    return pkg in get_installed_packages(target)


def fstab_header():
    return textwrap.dedent("""\
# /etc/fstab: static file system information.
#
# Use 'blkid' to print the universally unique identifier for a
# device; this may be used with UUID= as a more robust way to name devices
# that works even if disks are added and removed. See fstab(5).
#
# <file system> <mount point>   <type>  <options>       <dump>  <pass>""")


