"""Paths inside the target, as curtin.paths computes them."""

import glob
import os
import re

string_types = (str,)


def target_path(target, path=None):
    """`path` inside `target` (None or "" means /); leading slashes of `path` are dropped."""
    if target in (None, ""):
        target = "/"
    elif not isinstance(target, string_types):
        raise ValueError("Unexpected input for target: %s" % target)
    else:
        target = os.path.abspath(target)
        if target.startswith("//"):
            target = target[1:]
    if not path:
        return target
    if not isinstance(path, string_types):
        raise ValueError("Unexpected input for path: %s" % path)
    while len(path) and path[0] == "/":
        path = path[1:]
    return os.path.join(target, path)


def _version_key(fname):
    m = re.search(r".*/vmlinu.-([\d.-]+)-.*", fname)
    if not m:
        raise ValueError("Cannot extract version from '%s'" % fname)
    return [int(p) for p in re.split(r"[.-]", m.group(1)) if p.isdigit()]


def get_kernel_list(target, full_initrd_path=True):
    """Yield (kernel file name, initrd path, version) for each /boot/vmlinu?-* in target."""
    boot = target_path(target_path(target), 'boot')
    for kernel in sorted(glob.glob(boot + '/vmlinu*-*'), key=_version_key,
                         reverse=True):
        kfile = os.path.basename(kernel)
        version = kfile.split('-', 1)[1]
        initrd = 'initrd.img-' + version
        if full_initrd_path:
            initrd = os.path.join(boot, initrd)
        yield (kfile, initrd, version)
