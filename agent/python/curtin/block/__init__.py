"""The block-device queries hooks use: lsblk data, the devices behind a mount point, a
partition's disk (read from lsblk, /proc/mounts and sysfs, as curtin.block does)."""

import os

from .. import util


def path_to_kname(path):
    """The kernel name of a device path (/dev/sda1, /dev/disk/by-*/..., /sys/..., sda1)."""
    if path.startswith('/sys/'):
        return os.path.basename(path)
    name = os.path.basename(os.path.realpath(path))
    return name.replace('/', '!')


def kname_to_path(kname):
    return os.path.realpath(os.path.join('/dev', kname.replace('!', '/')))


def _lsblock_pairs_to_dict(lines):
    ret = {}
    for line in lines.splitlines():
        cur = {}
        for tok in util.shlex_split(line):
            k, v = tok.split("=", 1)
            k = 'MAJ:MIN' if k == 'MAJ_MIN' else k.replace('_', '-')
            cur[k] = v
        cur['device_path'] = kname_to_path(cur['KNAME'])
        ret[cur['KNAME']] = cur
    return ret


def _lsblock(args=None):
    """lsblk's data for every block device, keyed by kernel name."""
    keys = ['ALIGNMENT', 'DISC-ALN', 'DISC-GRAN', 'DISC-MAX', 'DISC-ZERO',
            'FSTYPE', 'GROUP', 'KNAME', 'LABEL', 'LOG-SEC', 'MAJ:MIN',
            'MIN-IO', 'MODE', 'MODEL', 'MOUNTPOINT', 'NAME', 'OPT-IO', 'OWNER',
            'PHY-SEC', 'RM', 'RO', 'ROTA', 'RQ-SIZE', 'SIZE', 'STATE',
            'TYPE', 'UUID']
    args = [x.replace('!', '/') for x in (args or [])]
    basecmd = ['lsblk', '--noheadings', '--bytes', '--pairs',
               '--output=' + ','.join(keys)]
    (out, _err) = util.subp(basecmd + list(args), capture=True)
    return _lsblock_pairs_to_dict(out.replace('!', '/'))


def get_proc_mounts():
    mounts = []
    with open('/proc/mounts') as fp:
        for line in fp:
            fields = line.split()
            if len(fields) == 6:
                mounts.append(tuple(fields))
    return mounts


def get_devices_for_mp(mountpoint):
    """The devices (full paths) mounted at `mountpoint`."""
    found = set()
    for _name, data in _lsblock().items():
        if data.get('MOUNTPOINT') == mountpoint:
            found.add(data['device_path'])
    if found:
        return list(found)
    return [os.path.realpath(dev) for (dev, mp, _vfs, _opts, _freq, _passno)
            in get_proc_mounts() if mp == mountpoint]


def get_blockdev_for_partition(devpath, strict=True):
    """(disk path, partition number) for a partition; (devpath, None) for a whole disk."""
    rpath = os.path.realpath(devpath)
    syspath = os.path.join('/sys/class/block', path_to_kname(devpath))
    if strict and not os.path.exists(syspath):
        raise OSError("%s had no syspath (%s)" % (devpath, syspath))
    ptpath = os.path.join(syspath, "partition")
    if not os.path.exists(ptpath):
        return (rpath, None)
    ptnum = util.load_file(ptpath).rstrip()
    disksyspath = os.path.dirname(os.path.realpath(syspath))
    diskmajmin = util.load_file(os.path.join(disksyspath, "dev")).rstrip()
    diskdevpath = os.path.realpath("/dev/block/%s" % diskmajmin)
    if not os.path.exists("/dev/block/%s" % diskmajmin):
        diskdevpath = os.path.join('/dev', os.path.basename(disksyspath))
    return (diskdevpath, ptnum)
