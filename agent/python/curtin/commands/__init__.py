"""curtin.commands: the subcommand modules hooks import (curthooks, apt_config)."""
