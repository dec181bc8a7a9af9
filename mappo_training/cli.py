"""`swarm`: the one command-line entry point.

Each subcommand lives in its own module that exposes `add_arguments(parser)`
and `run(args) -> int`. Those modules import nothing heavy at top level, so
`swarm --help` is instant. Training verbs live in mappo_training; the verbs
that act on running nodes (demo, deploy, swap, stop, goal, status, replay, bench node/deploy) live
in the ROS-side swarm_ops package and are named here by module path only, so
the training package never imports the ROS side: where swarm_ops is not
installed, those verbs say how to install it.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# (name, module, one-line help). `bench` has its own nested subcommands.
COMMANDS = [
    ("train", "mappo_training.train", "train a swarm policy with MAPPO"),
    ("eval", "mappo_training.evaluate", "score a run, checkpoint or exported model"),
    ("export", "mappo_training.export", "export each robot's actor to ONNX"),
    ("ablate", "mappo_training.ablate", "what each MAPPO trick is worth: variants x seeds"),
    ("demo", "swarm_ops.demo", "the main job: a short simulated swarm run with pictures"),
    (
        "deploy",
        "swarm_ops.deploy",
        "start policy nodes (and a sim bridge) without a ROS distro",
    ),
    ("swap", "swarm_ops.swap", "put a new policy on running robots"),
    ("stop", "swarm_ops.stop", "e-stop running robots (or --release them)"),
    ("goal", "swarm_ops.goal", "send goals to robots (one, or a fleet from YAML), or cancel"),
    ("status", "swarm_ops.status", "each robot's state, policy, sensor rates and diagnostics"),
    ("replay", "swarm_ops.replay", "a recorded run (rosbag2): paths PNG and a summary"),
]
BENCHMARKS = [
    ("sim", "mappo_training.benchmarks.sim", "simulator throughput vs the PyBullet floor"),
    ("train", "mappo_training.benchmarks.train", "training throughput vs env-only throughput"),
    ("update", "mappo_training.benchmarks.update", "one PPO update: CPU vs --device (cuda)"),
    ("policy", "mappo_training.benchmarks.policy", "single-observation latency, ORT vs torch"),
    ("pettingzoo", "mappo_training.benchmarks.pettingzoo", "a PettingZoo run vs random, scripted"),
    ("node", "swarm_ops.benchmarks.node", "scan->cmd_vel latency through DDS, swap ticks"),
    ("deploy", "swarm_ops.benchmarks.deploy", "closed loop over ROS 2 vs swarm eval"),
]


OUR_PACKAGES = ("mappo_training", "swarm_contract", "swarm_controller", "swarm_ops")
"""Packages of this project, each installed on its own (ros2_ws/src/<name>)."""


def _load(module_name: str):
    """A command module, or the name of the project package it needs that is not
    installed (a verb of swarm_ops without swarm_ops, or swarm_ops without
    swarm_controller)."""
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        package = (err.name or "").split(".")[0]
        if package in OUR_PACKAGES:
            return package
        raise


def _missing(command: str, package: str):
    """A stand-in `run` for a verb whose package is not installed: say which and how."""

    def run(_args: argparse.Namespace) -> int:
        print(
            f"error: `swarm {command}` needs the {package} package, which is not installed;"
            f" from the repository: pip install -e ros2_ws/src/{package} (or `make setup`)",
            file=sys.stderr,
        )
        return 2

    return run


def _add_commands(sub, table, prefix: str = "") -> None:
    for name, module_name, help_text in table:
        module = _load(module_name)
        if isinstance(module, str):
            p = sub.add_parser(name, help=f"{help_text} (not installed)", add_help=False)
            # Whatever the user typed after the verb, the answer is the install hint.
            p.set_defaults(_run=_missing(prefix + name, module), _any_arguments=True)
            continue
        p = sub.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="swarm",
        description="Train robot swarms with MAPPO, export per-robot ONNX policies, deploy on ROS 2.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_commands(sub, COMMANDS)
    bench = sub.add_parser("bench", help="benchmarks (ratios measured side by side)")
    bench_sub = bench.add_subparsers(dest="benchmark", metavar="BENCHMARK")
    _add_commands(bench_sub, BENCHMARKS, prefix="bench ")
    bench.set_defaults(_run=lambda args: bench.print_help() or 2)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown and not getattr(args, "_any_arguments", False):
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    if not hasattr(args, "_run"):
        parser.print_help()
        return 2
    from swarm_contract.config import ConfigError

    try:
        return int(args._run(args) or 0)
    except ConfigError as err:
        # Commands report their own config errors in context; this catches the
        # rest (a benchmark's bad override, say) without a traceback.
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
