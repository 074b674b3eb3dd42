"""The csops command line: the argparse builder (main) and its subcommands.
"""

from engine.cli.common import (
    TALKS_TO_TEMPORAL,
    load_settings,
)
from engine.cli.main import (
    cmd_check_config,
    cmd_start,
    cmd_up,
    cmd_validate,
    main,
    run,
)
from engine.cli.up import (
    temporal_binary,
)

__all__ = [
    "TALKS_TO_TEMPORAL",
    "cmd_check_config",
    "cmd_start",
    "cmd_up",
    "cmd_validate",
    "load_settings",
    "main",
    "run",
    "temporal_binary",
]
