"""The parts of curtin.util that hooks use: the command environment, subp, ChrootableTarget
(in-target commands run through deployer's `curtin in-target`), sources and small file
helpers."""

import errno
import json
import os
import shlex
import subprocess

from . import paths
from ._deployer import STATE_ENV, in_target_argv
from .log import LOG

string_types = (str,)


def load_command_environment(env=os.environ, strict=False):
    """The state of a curtin stage command: target, config, fstab ... from the environment."""
    if strict:
        missing = [k for k in STATE_ENV.values() if k not in env]
        if len(missing):
            raise KeyError("missing environment vars: %s" % missing)
    return {k: env.get(v) for k, v in STATE_ENV.items()}


class ProcessExecutionError(IOError):
    MESSAGE_TMPL = ('%(description)s\n'
                    'Command: %(cmd)s\n'
                    'Exit code: %(exit_code)s\n'
                    'Reason: %(reason)s\n'
                    'Stdout: %(stdout)s\n'
                    'Stderr: %(stderr)s')
    stdout_indent_level = 8

    def __init__(self, stdout=None, stderr=None, exit_code=None, cmd=None,
                 description=None, reason=None):
        self.cmd = cmd if cmd else '-'
        self.description = (description if description
                            else 'Unexpected error while running command.')
        self.exit_code = exit_code if isinstance(exit_code, int) else '-'
        self.stderr = self._indent_text(stderr) if stderr else "''"
        self.stdout = self._indent_text(stdout) if stdout else "''"
        self.reason = reason if reason else '-'
        IOError.__init__(self, self.MESSAGE_TMPL % {
            'description': self.description, 'cmd': self.cmd,
            'exit_code': self.exit_code, 'stdout': self.stdout,
            'stderr': self.stderr, 'reason': self.reason})

    def _indent_text(self, text):
        if isinstance(text, bytes):
            text = text.decode(errors='replace')
        return text.replace('\n', '\n' + ' ' * self.stdout_indent_level)


def subp(args, data=None, stdin=None, rcs=None, env=None, capture=False,
         combine_capture=False, shell=False, logstring=False,
         decode="replace", target=None, cwd=None, log_captured=False,
         unshare_pid=None, retries=None, update_env=None, **kwargs):
    """Run a command (in the target when `target` is not /, through deployer's in-target).
    Returns (out, err): None, None unless capturing. A return code outside `rcs` raises
    ProcessExecutionError."""
    if rcs is None:
        rcs = [0]
    env = env.copy() if env is not None else os.environ.copy()
    if update_env:
        env.update(update_env)
    if isinstance(data, str):
        data = data.encode()
    tpath = paths.target_path(target)
    if isinstance(args, string_types):
        args = [args]
    if tpath != "/":
        argv = in_target_argv(tpath, args, shell=shell)
    else:
        argv = (['sh', '-c'] if shell else []) + list(args)
    if not logstring:
        LOG.debug("Running command %s with allowed return codes %s (capture=%s)",
                  argv, rcs, 'combine' if combine_capture else capture)
    else:
        LOG.debug("Running hidden command to protect sensitive input/output "
                  "logstring: %s", logstring)
    tries = [0] + list(retries or [])
    for n, delay in enumerate(tries):
        if delay:
            import time
            time.sleep(delay)
        try:
            return _run(argv, data, stdin, rcs, env, capture, combine_capture,
                        decode, cwd, log_captured)
        except ProcessExecutionError:
            if n == len(tries) - 1:
                raise


def _run(argv, data, stdin, rcs, env, capture, combine_capture, decode, cwd,
         log_captured):
    stdout = stderr = None
    if capture:
        stdout = stderr = subprocess.PIPE
    if combine_capture:
        stdout, stderr = subprocess.PIPE, subprocess.STDOUT
    if stdin is not None and data is not None:
        raise ValueError("data and stdin are mutually exclusive")
    devnull = None
    if stdin is None:
        if data is not None:
            stdin = subprocess.PIPE
        else:
            devnull = stdin = open(os.devnull)
    try:
        sp = subprocess.Popen(argv, stdout=stdout, stderr=stderr, stdin=stdin,
                              env=env, cwd=cwd)
        out, err = sp.communicate(data)
    except OSError as e:
        raise ProcessExecutionError(cmd=argv, reason=e)
    finally:
        if devnull:
            devnull.close()
    if capture or combine_capture:
        out = out or b''
        err = err or b''
    if decode:
        out = out.decode('utf-8', errors=decode) if isinstance(out, bytes) else out
        err = err.decode('utf-8', errors=decode) if isinstance(err, bytes) else err
    if capture and log_captured:
        LOG.debug("Command returned stdout=%s, stderr=%s", out, err)
    if sp.returncode not in rcs:
        raise ProcessExecutionError(stdout=out, stderr=err,
                                    exit_code=sp.returncode, cmd=argv)
    return (out, err)


def is_uefi_bootable():
    return os.path.exists('/sys/firmware/efi')


class ChrootableTarget(object):
    """Run commands in the target: `with ChrootableTarget(t) as c: c.subp([...])`.

    Each command goes through deployer's `curtin in-target`, which binds /dev, /proc, /run,
    /sys (and efivars), copies resolv.conf, installs policy-rc.d and runs the command in its
    own PID namespace, then undoes all of it."""

    def __init__(self, target, allow_daemons=False, sys_resolvconf=True,
                 mounts=None):
        if target is None:
            target = "/"
        self.target = paths.target_path(target)
        self.allow_daemons = allow_daemons
        self.sys_resolvconf = sys_resolvconf
        self.mounts = mounts

    def __enter__(self):
        if not os.path.isdir(self.target):
            raise ValueError("target %s is not a directory" % self.target)
        return self

    def __exit__(self, etype, value, trace):
        return None

    def subp(self, *args, **kwargs):
        kwargs['target'] = self.target
        return subp(*args, **kwargs)

    def path(self, path):
        return paths.target_path(self.target, path)


class RunInChroot(ChrootableTarget):
    """The legacy name: `with RunInChroot(t) as c: c([...])`."""
    __call__ = ChrootableTarget.subp


def run_hook_if_exists(target, hook):
    """Run <target>/curtin/<hook> if it is a file (no chroot); True if it ran."""
    target_hook = paths.target_path(target, '/curtin/' + hook)
    if os.path.isfile(target_hook):
        LOG.debug("running %s" % target_hook)
        subp([target_hook])
        return True
    return False


def sanitize_source(source):
    """A source string as {type, uri} (a dict is returned as it is)."""
    if type(source) is dict:
        return source
    supported = ['tgz', 'dd-tgz', 'tbz', 'dd-tbz', 'txz', 'dd-txz', 'dd-tar',
                 'dd-bz2', 'dd-gz', 'dd-xz', 'dd-raw', 'fsimage',
                 'fsimage-layered']
    for i in supported:
        prefix = i + ":"
        if source.startswith(prefix):
            return {'type': i, 'uri': source[len(prefix):]}
    if source.startswith("squashfs://"):
        return {'type': 'fsimage', 'uri': source[len("squashfs://"):]}
    elif source.startswith("squashfs:"):
        LOG.warning("The squashfs: prefix is deprecated and will be removed in a "
                    "future release. Please use squashfs:// instead.")
        return {'type': 'fsimage', 'uri': source[len("squashfs:"):]}
    if source.endswith("squashfs") or source.endswith("squash"):
        return {'type': 'fsimage', 'uri': source}
    LOG.debug("unknown type for url '%s', assuming type '%s'", source, 'tgz')
    return {'type': 'tgz', 'uri': source}


def get_dd_images(sources):
    """The disk-image sources (type dd-*) of a sources mapping."""
    src = []
    if type(sources) is not dict:
        return src
    for i in sources:
        if type(sources[i]) is not dict:
            continue
        if sources[i]['type'].startswith('dd-'):
            src.append(sources[i])
    return src


def ensure_dir(path, mode=None):
    try:
        os.makedirs(path)
    except OSError as e:
        if e.errno != errno.EEXIST:
            raise
    if mode is not None:
        os.chmod(path, mode)


def write_file(filename, content, mode=0o644, omode="w"):
    ensure_dir(os.path.dirname(filename))
    with open(filename, omode) as fp:
        fp.write(content)
    os.chmod(filename, mode)


def load_file(path, read_len=None, offset=0, decode=True):
    with open(path, "rb") as fp:
        if offset:
            fp.seek(offset)
        contents = fp.read(read_len) if read_len else fp.read()
    if decode:
        return contents.decode('utf-8', errors='replace')
    return contents


def load_json(text, root_types=(dict,)):
    decoded = json.loads(text)
    if not isinstance(decoded, tuple(root_types)):
        raise TypeError("(%s) root types expected, got %s instead"
                        % (root_types, type(decoded)))
    return decoded


def del_file(path):
    try:
        os.unlink(path)
        LOG.debug("del_file: removed %s", path)
    except OSError as e:
        if e.errno != errno.ENOENT:
            raise


def is_exe(fpath):
    return os.path.isfile(fpath) and os.access(fpath, os.X_OK)


def which(program, search=None, target=None):
    """The path of `program` as seen inside `target` (its PATH dirs, resolved in the target),
    or None."""
    target = paths.target_path(target)
    if os.path.sep in program:
        return program if is_exe(paths.target_path(target, program)) else None
    if search is None:
        candidates = [p.strip('"') for p in os.environ.get("PATH", "").split(":")]
        if target == "/":
            search = candidates
        else:
            search = [p for p in candidates if p.startswith("/")]
    normalized = [os.path.abspath(p) for p in search]
    for p in normalized:
        ppath = os.path.sep.join((p, program))
        if is_exe(paths.target_path(target, ppath)):
            return ppath
    return None


def human2bytes(size):
    """'1G', '512M', '100' (bytes) ... as bytes (powers of 1024)."""
    size_in = size
    if size.endswith("B"):
        size = size[:-1]
    mpliers = {'B': 1, 'K': 2 ** 10, 'M': 2 ** 20, 'G': 2 ** 30, 'T': 2 ** 40}
    num = size
    mplier = 'B'
    for m in mpliers:
        if size.endswith(m):
            mplier = m
            num = size[0:-len(m)]
    try:
        num = float(num)
    except ValueError:
        raise ValueError("'%s' is not valid input." % size_in)
    if num < 0:
        raise ValueError("'%s': cannot be negative" % size_in)
    return int(num * mpliers[mplier])


def shlex_split(str_in):
    return shlex.split(str_in)


def load_shell_content(content, add_empty=False, empty_val=None):
    """KEY=value lines (shell quoting) as a dict."""
    data = {}
    for line in shlex.split(content, comments=True):
        key, value = line.split("=", 1)
        if not value:
            value = empty_val
        if add_empty or value:
            data[key] = value
    return data


def load_os_release(content):
    return load_shell_content(content, add_empty=False, empty_val=None)


def get_platform_arch():
    import platform
    platform2arch = {
        'i586': 'i386', 'i686': 'i386', 'x86_64': 'amd64', 'ppc64le': 'ppc64el',
        'aarch64': 'arm64',
    }
    machine = platform.machine()
    return platform2arch.get(machine, machine)
