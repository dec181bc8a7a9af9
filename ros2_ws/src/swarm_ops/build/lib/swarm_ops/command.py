"""One `swarm` verb of this package run on its own, without the trainer installed.

`swarm swap ...` and `ros2 run swarm_ops swap ...` (or `python -m
swarm_ops.swap ...`) run the same module: its `add_arguments(parser)` and
`run(args)`. This is the entry point for an operator's machine that has the
ROS side but not `mappo_training`, which provides the `swarm` command.
"""

from __future__ import annotations

import argparse
import sys
from types import ModuleType

from swarm_contract.config import ConfigError


def command_main(module: ModuleType, prog: str, argv: list[str] | None = None) -> int:
    """Parse `argv` with the module's arguments and run it; a config error is one
    line on stderr (exit 2), Ctrl-C exits 130 without a traceback."""
    summary = (module.__doc__ or "").strip().splitlines()[0] if module.__doc__ else None
    parser = argparse.ArgumentParser(prog=prog, description=summary)
    module.add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return int(module.run(args) or 0)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
