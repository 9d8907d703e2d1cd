"""curtin's version module: the version string pollinate and logs report."""

from . import __version__


def version_string():
    return "%s~deployer" % __version__
