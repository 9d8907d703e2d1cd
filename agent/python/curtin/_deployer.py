"""How this package reaches deployer: its `curtin` entry point (on PATH in every hook's
environment, `$DEPLOYER_CURTIN` to name another), for the steps deployer implements."""

import json
import os
import shutil
import subprocess
import tempfile

from .log import LOG

# load_command_environment's keys and the variables deployer's steps read them from.
STATE_ENV = {
    'scratch': 'WORKING_DIR', 'fstab': 'OUTPUT_FSTAB',
    'interfaces': 'OUTPUT_INTERFACES', 'config': 'CONFIG',
    'target': 'TARGET_MOUNT_POINT', 'network_state': 'OUTPUT_NETWORK_STATE',
    'network_config': 'OUTPUT_NETWORK_CONFIG',
    'report_stack_prefix': 'CURTIN_REPORTSTACK',
}


def curtin_exe():
    exe = os.environ.get('DEPLOYER_CURTIN') or shutil.which('curtin')
    if not exe:
        raise RuntimeError(
            "deployer's `curtin` entry point is not on PATH: this curtin package runs "
            "deployer's steps through it (set $DEPLOYER_CURTIN to the deployer binary)")
    return exe


def step_env(state=None, target=None, **overrides):
    """The environment for a deployer step: ours, with the state paths of `state`."""
    env = os.environ.copy()
    for key, var in STATE_ENV.items():
        value = (state or {}).get(key)
        if value:
            env[var] = value
    if target:
        env['TARGET_MOUNT_POINT'] = target
    for var, value in overrides.items():
        if value is None:
            env.pop(var, None)
        else:
            env[var] = value
    return env


def run_step(step, target, state=None, cfg=None, args=(), **overrides):
    """Run `curtin curthooks --step STEP` on `target`. `cfg` (a dict) is passed as the
    step's config through a temporary JSON file; without it the state's config is used."""
    tmp = tempfile.mkdtemp(prefix='deployer-step-')
    try:
        if cfg is not None:
            overrides['CONFIG'] = os.path.join(tmp, 'config')
            with open(overrides['CONFIG'], 'w') as fp:
                json.dump(cfg, fp)
        env = step_env(state, target, **overrides)
        # A step reads the state files its environment names: empty ones for what the
        # caller's state does not have (as curtin's working dir starts them).
        for var, name in (('CONFIG', 'config'), ('OUTPUT_FSTAB', 'fstab'),
                          ('OUTPUT_NETWORK_CONFIG', 'network_config'),
                          ('OUTPUT_NETWORK_STATE', 'network_state')):
            if not env.get(var):
                env[var] = os.path.join(tmp, name)
                with open(env[var], 'w') as fp:
                    fp.write('{}' if var == 'CONFIG' else '')
        env.setdefault('WORKING_DIR', tmp)
        argv = [curtin_exe(), 'curthooks', '--step', step,
                '--target-mount', target] + list(args)
        LOG.debug("deployer step: %s", argv)
        rc = subprocess.call(argv, env=env, stdin=subprocess.DEVNULL)
        if rc != 0:
            from .util import ProcessExecutionError
            raise ProcessExecutionError(
                cmd=argv, exit_code=rc,
                description="deployer's %s step failed" % step)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def in_target_argv(target, args, shell=False):
    argv = [curtin_exe(), 'in-target', '--target', target, '--']
    if shell:
        argv += ['sh', '-c']
    if isinstance(args, str):
        args = [args]
    return argv + list(args)
