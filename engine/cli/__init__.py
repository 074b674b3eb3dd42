"""The csops command line: the argparse builder (main) and its subcommands.
"""

from engine.cli.cli_sim import (
    parse_start,
)
from engine.cli.main import (
    TALKS_TO_TEMPORAL,
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
    "main",
    "parse_start",
    "run",
    "temporal_binary",
]
