"""`swarm eval --matrix`: one policy scored over scenarios x team sizes.

    swarm eval models/default --matrix standard --fidelity nominal --store

A matrix is rows (scenarios: a name and the sim keys that make it, such as
`random + 6 obstacles` = {scenario: random, num_obstacles: 6}) times columns
(team sizes), all at one fidelity preset (sim.fidelity.preset). Presets live
in configs/matrices/<name>.yaml; any YAML file of the same shape works too.

Every cell is an ordinary `swarm eval` (evaluate.evaluate: a models/<name>
folder through onnxruntime, robot_io and the safety layer, deterministic),
with the sim keys of its row, its team size and the fidelity set on the
policy's own task, and the same seed for every cell, so a rerun gives the
same numbers. It prints a progress line per cell, tables of success,
collisions, time-to-goal and path efficiency, the mean success and the worst
cell, and writes to --out:

    matrix.yaml   every cell's numbers, the mean, the worst cell, the command
    matrix.md     the tables in Markdown (for a model's README)
    matrix.png    heatmaps of success and collisions, numbers in the cells

`--store` also writes the matrix into a models/<name> folder's policy card
(policy.yaml `matrix:`, one entry per preset and fidelity, newest replaces
older) with its heatmap beside it, and the card's matrices, tables and
heatmaps, into the folder's README.md. It is a flag rather than the default
because the folder is a shipped model: scoring it should not change it
unless asked.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from swarm_contract.config import ConfigError, from_dict, load_yaml

MATRICES_DIR = Path(__file__).parent / "configs" / "matrices"
FIDELITIES = ("ideal", "nominal", "harsh")
Fidelity = Literal["ideal", "nominal", "harsh"]

CELL_KEYS = ("success_rate", "collision_rate", "time_to_goal_s", "path_efficiency")
"""The numbers of a cell that the tables, the card and the heatmap show."""

CELL_SET_KEYS = ("num_robots", "fidelity", "team_sizes", "variants", "curriculum")
"""Sim keys the matrix sets for every cell (columns, --fidelity, one fixed team);
a row may not set them."""


@dataclass
class MatrixRow:
    """One scenario of the matrix."""

    name: str
    """What the tables call it, e.g. `random + 6 obstacles`."""
    sim: dict[str, Any] = field(default_factory=dict)
    """Sim keys set on the policy's task for this row, e.g. {scenario: random, num_obstacles: 6}."""


@dataclass
class MatrixSpec:
    """A matrix file: rows x team sizes at one fidelity."""

    rows: list[MatrixRow] = field(default_factory=list)
    team_sizes: list[int] = field(default_factory=list)
    """Columns: robots per arena."""
    episodes: int = 100
    """Episodes per cell (--episodes overrides)."""
    seed: int = 12345
    """Every cell's seed (--seed overrides): the same as `swarm eval`'s default."""
    fidelity: Fidelity = "ideal"
    """The simulator's fidelity preset when --fidelity is not given."""
    description: str = ""

    def __post_init__(self) -> None:
        # ValueError: from_dict prefixes it with the file being loaded.
        if not self.rows:
            raise ValueError(
                "rows: give at least one, e.g. [{name: circle, sim: {scenario: circle}}]"
            )
        if not self.team_sizes:
            raise ValueError("team_sizes: give at least one, e.g. [2, 4, 8, 16]")
        bad = [n for n in self.team_sizes if n < 1]
        if bad or len(set(self.team_sizes)) != len(self.team_sizes):
            raise ValueError(f"team_sizes={self.team_sizes}: must be distinct integers >= 1")
        if self.episodes < 1:
            raise ValueError(f"episodes={self.episodes}: must be >= 1")
        names = [r.name for r in self.rows]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"rows: name(s) {twice} given twice; each row needs its own name")
        for i, row in enumerate(self.rows):
            fixed = sorted(set(row.sim) & set(CELL_SET_KEYS))
            if fixed:
                raise ValueError(
                    f"rows[{i}] ({row.name!r}).sim sets {fixed}: the matrix sets those"
                    " for every cell (team_sizes are the columns, --fidelity the preset);"
                    " remove them from the row"
                )


def known_presets() -> list[str]:
    return sorted(p.stem for p in MATRICES_DIR.glob("*.yaml"))


def load_matrix(spec: str) -> tuple[str, MatrixSpec]:
    """A preset name (configs/matrices/<name>.yaml) or a YAML file -> (its name, the matrix)."""
    path = Path(spec)
    if path.suffix not in (".yaml", ".yml"):
        path = MATRICES_DIR / f"{spec}.yaml"
        if not path.is_file():
            raise ConfigError(
                f"--matrix {spec!r}: no such preset; presets: {known_presets()},"
                " or give a matrix YAML file (see configs/matrices/standard.yaml)"
            )
    if not path.is_file():
        raise ConfigError(f"--matrix {spec!r}: file not found")
    return path.stem, from_dict(MatrixSpec, load_yaml(path), f"matrix {path.name}")


def fidelity_override(fidelity: str) -> dict:
    """The sim keys that select a fidelity preset.

    Where the simulator has no fidelity section (a build before
    sim/fidelity.py), only `ideal`, which is what that simulator is, can be asked for.
    """
    from mappo_training.sim import SimConfig

    if fidelity not in FIDELITIES:
        raise ConfigError(f"--fidelity {fidelity!r}: must be one of {list(FIDELITIES)}")
    if "fidelity" not in {f.name for f in dataclasses.fields(SimConfig)}:
        if fidelity != "ideal":
            raise ConfigError(
                f"--fidelity {fidelity}: this simulator has no fidelity presets"
                " (SimConfig.fidelity); use --fidelity ideal"
            )
        return {}
    return {"fidelity": {"preset": fidelity}}


@dataclass
class Cell:
    row: MatrixRow
    robots: int

    def overrides(self, fidelity: dict) -> dict:
        # One fixed team per cell: a policy card trained on a mix (team sizes,
        # episode variants, a curriculum) is scored on exactly this cell's task.
        fixed = {"num_robots": self.robots, "team_sizes": None, "variants": [], "curriculum": None}
        return {**self.row.sim, **fixed, **fidelity}


def cells_of(spec: MatrixSpec) -> list[Cell]:
    return [Cell(row, n) for row in spec.rows for n in spec.team_sizes]


def check_cells(cells: list[Cell], fidelity: dict) -> None:
    """Refuse a bad sim key or value in any cell before the first one runs (a
    standard matrix takes an hour; a typo in its last row should not wait for it)."""
    from mappo_training.sim import SimConfig

    for cell in cells:
        try:
            from_dict(SimConfig, cell.overrides(fidelity), "sim")
        except ConfigError as err:
            raise ConfigError(
                f"matrix row {cell.row.name!r} x {cell.robots} robots: {err}"
            ) from err


def run_matrix(
    target: Path,
    name: str,
    spec: MatrixSpec,
    *,
    fidelity: str,
    command: str,
    safety_layer: bool = True,
    log=print,
) -> dict:
    """Score `target` on every cell (evaluate.evaluate); returns the results."""
    from mappo_training.evaluate import evaluate

    override = fidelity_override(fidelity)
    cells = cells_of(spec)
    check_cells(cells, override)
    log(
        f"matrix {name} at fidelity {fidelity}: {target}, {len(spec.rows)} scenarios x"
        f" {len(spec.team_sizes)} team sizes, {spec.episodes} episodes per cell, seed {spec.seed}"
    )
    start = time.perf_counter()
    results, notes = [], set()
    width = len(str(len(cells)))
    for i, cell in enumerate(cells, 1):
        label = f"[{i:>{width}}/{len(cells)}] {cell.row.name} x {cell.robots} robots"
        log(f"{label} ...", end="", flush=True)
        t0 = time.perf_counter()
        report = evaluate(
            target,
            episodes=spec.episodes,
            seed=spec.seed,
            safety_layer=safety_layer,
            overrides=cell.overrides(override),
        )
        wall = time.perf_counter() - t0
        if report.get("note"):
            notes.add(report["note"].split(";")[0])
        numbers = {k: v for k, v in report.items() if k not in ("policy", "robots", "note")}
        results.append(
            {"row": cell.row.name, "robots": cell.robots, **numbers, "wall_s": round(wall, 2)}
        )
        log(
            f" success {_pct(report['success_rate'])}, collisions {_pct(report['collision_rate'])}"
            f" ({report['episodes']} episodes in {wall:.1f} s,"
            f" {report['episodes'] / wall:.2f} episodes/s)",
            flush=True,
        )
    successes = [c["success_rate"] for c in results if c["success_rate"] is not None]
    worst = min(results, key=lambda c: (c["success_rate"] is None, c["success_rate"] or 0.0))
    return {
        "policy": str(target),
        "preset": name,
        "fidelity": fidelity,
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": command,
        "episodes_per_cell": spec.episodes,
        "seed": spec.seed,
        "safety_layer": safety_layer,
        "rows": [r.name for r in spec.rows],
        "team_sizes": list(spec.team_sizes),
        "mean_success": round(sum(successes) / len(successes), 4) if successes else None,
        "worst_cell": {k: worst[k] for k in ("row", "robots", "success_rate")},
        "wall_time_s": round(time.perf_counter() - start, 1),
        "notes": sorted(notes),
        "cells": results,
    }


# --------------------------------------------------------------------------- #
# Tables, heatmap, card.
# --------------------------------------------------------------------------- #

TABLES = [
    ("success", "success_rate", lambda v: _pct(v)),
    ("collisions", "collision_rate", lambda v: _pct(v)),
    ("time-to-goal (s)", "time_to_goal_s", lambda v: "n/a" if v is None else f"{v:.1f}"),
    ("path efficiency", "path_efficiency", lambda v: "n/a" if v is None else f"{v:.2f}"),
]


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * v:.1f}%"


def _grid(results: dict, key: str) -> list[list[Any]]:
    by_cell = {(c["row"], c["robots"]): c.get(key) for c in results["cells"]}
    return [[by_cell.get((r, n)) for n in results["team_sizes"]] for r in results["rows"]]


def text_tables(results: dict) -> str:
    """The four tables (rows: scenarios, columns: team sizes), plain text."""
    first = max(len(t[0]) for t in TABLES)
    first = max(first, *(len(r) for r in results["rows"]))
    heads = [f"{n} robots" for n in results["team_sizes"]]
    width = max(9, *(len(h) for h in heads))
    blocks = []
    for title, key, fmt in TABLES:
        lines = [f"{title:<{first}}  " + "  ".join(f"{h:>{width}}" for h in heads)]
        for row, values in zip(results["rows"], _grid(results, key), strict=True):
            lines.append(f"{row:<{first}}  " + "  ".join(f"{fmt(v):>{width}}" for v in values))
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def summary_line(results: dict) -> str:
    w = results["worst_cell"]
    return (
        f"mean success {_pct(results['mean_success'])}; worst cell: {w['row']} x {w['robots']}"
        f" robots, {_pct(w['success_rate'])}"
    )


def markdown(results: dict) -> str:
    """Success and collisions per cell as one Markdown table, with the summary."""
    heads = " | ".join(f"{n} robots" for n in results["team_sizes"])
    lines = [
        f"Matrix `{results['preset']}` at fidelity `{results['fidelity']}`,"
        f" {results['episodes_per_cell']} episodes per cell: success (collisions).",
        "",
        f"| scenario | {heads} |",
        "|---|" + "---|" * len(results["team_sizes"]),
    ]
    success, collisions = _grid(results, "success_rate"), _grid(results, "collision_rate")
    for row, s_row, c_row in zip(results["rows"], success, collisions, strict=True):
        cells = " | ".join(f"{_pct(s)} ({_pct(c)})" for s, c in zip(s_row, c_row, strict=True))
        lines.append(f"| {row} | {cells} |")
    lines += ["", f"{summary_line(results)}.", "", f"`{results['command']}`", ""]
    return "\n".join(lines)


def heatmap(results: dict, path: Path) -> Path:
    """Success and collision rates as two heatmaps, the percentage in every cell."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    rows, sizes = results["rows"], results["team_sizes"]
    panels = [
        ("success", "success_rate", "RdYlGn"),
        ("collisions", "collision_rate", "Reds"),
    ]
    fig, axes = plt.subplots(
        1, 2, figsize=(2.2 + 2 * 0.9 * len(sizes) + 2.5, 1.6 + 0.55 * len(rows)), squeeze=False
    )
    for ax, (title, key, cmap) in zip(axes[0], panels, strict=True):
        grid = np.array(
            [[np.nan if v is None else 100 * v for v in r] for r in _grid(results, key)], float
        )
        ax.imshow(grid, cmap=cmap, vmin=0, vmax=100, aspect="auto")
        for (i, j), v in np.ndenumerate(grid):
            text = "n/a" if np.isnan(v) else f"{v:.0f}%"
            dark = not np.isnan(v) and (v > 70 if key == "collision_rate" else v < 25 or v > 85)
            ax.text(
                j, i, text, ha="center", va="center", fontsize=9, color="white" if dark else "black"
            )
        ax.set_xticks(range(len(sizes)), [str(n) for n in sizes])
        ax.set_xlabel("robots")
        ax.set_yticks(range(len(rows)), rows if ax is axes[0][0] else [""] * len(rows))
        ax.set_title(title, fontsize=10)
    fig.suptitle(
        f"{Path(results['policy']).name}: matrix {results['preset']}, fidelity"
        f" {results['fidelity']}, {results['episodes_per_cell']} episodes per cell\n"
        f"{summary_line(results)}",
        fontsize=9,
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_outputs(results: dict, out: Path) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    files = {
        "results": out / "matrix.yaml",
        "tables": out / "matrix.md",
        "heatmap": out / "matrix.png",
    }
    files["results"].write_text(yaml.safe_dump(results, sort_keys=False))
    files["tables"].write_text(markdown(results))
    heatmap(results, files["heatmap"])
    return files


def store_in_card(model_dir: Path, results: dict, picture: Path) -> Path:
    """Write the matrix into models/<name>/policy.yaml (`matrix:`, one entry per
    preset and fidelity) and its heatmap beside it; returns the card's path."""
    card_path = model_dir / "policy.yaml"
    card = yaml.safe_load(card_path.read_text())
    name = f"matrix_{results['preset']}_{results['fidelity']}.png"
    shutil.copyfile(picture, model_dir / name)
    keep = ("row", "robots", "episodes", *CELL_KEYS, "arrived_fraction")
    entry = {
        **{k: results[k] for k in ("preset", "fidelity", "date", "command")},
        "episodes_per_cell": results["episodes_per_cell"],
        "seed": results["seed"],
        "safety_layer": results["safety_layer"],
        "mean_success": results["mean_success"],
        "worst_cell": results["worst_cell"],
        "heatmap": name,
        "cells": [{k: c.get(k) for k in keep} for c in results["cells"]],
    }
    entries = [
        e
        for e in card.get("matrix") or []
        if (e.get("preset"), e.get("fidelity")) != (entry["preset"], entry["fidelity"])
    ]
    card["matrix"] = [*entries, entry]
    card_path.write_text(yaml.safe_dump(card, sort_keys=False))
    store_in_readme(model_dir, card)
    return card_path


README_BEGIN = "<!-- matrix: written by swarm eval --matrix --store; edits here are replaced -->"
README_END = "<!-- matrix: end -->"


def card_results(entry: dict) -> dict:
    """A stored card entry as results that `markdown` can draw (rows and team
    sizes in the order the cells ran)."""
    cells = entry["cells"]
    rows = list(dict.fromkeys(c["row"] for c in cells))
    sizes = list(dict.fromkeys(c["robots"] for c in cells))
    return {**entry, "rows": rows, "team_sizes": sizes}


def store_in_readme(model_dir: Path, card: dict) -> Path | None:
    """Write every matrix of the card, tables and heatmap, into the model's
    README.md between README_BEGIN and README_END (appended the first time), so
    what a user reads beside the ONNX file is what the card holds. None when
    the folder has no README."""
    readme = model_dir / "README.md"
    if not readme.is_file():
        return None
    parts = [README_BEGIN, "## Matrix", ""]
    for entry in card.get("matrix") or []:
        parts += [markdown(card_results(entry)), f"![matrix]({entry['heatmap']})", ""]
    parts.append(README_END)
    block = "\n".join(parts)
    text = readme.read_text()
    if README_BEGIN in text and README_END in text:
        head, rest = text.split(README_BEGIN, 1)
        tail = rest.split(README_END, 1)[1]
        text = head + block + tail
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    readme.write_text(text)
    return readme


# --------------------------------------------------------------------------- #
# Command line (options added to `swarm eval` by evaluate.add_arguments).
# --------------------------------------------------------------------------- #

SINGLE_EVAL_ONLY = {
    "scenario": "--scenario",
    "robots": "--robots",
    "render": "--render",
    "start_jitter": "--start-jitter",
}
"""`swarm eval` options that shape one evaluation; a matrix's rows and columns do that."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--matrix",
        metavar="PRESET|YAML",
        help=f"score over scenarios x team sizes: a preset ({', '.join(known_presets())})"
        " or a matrix YAML file; writes tables, a heatmap and matrix.yaml to --out",
    )
    p.add_argument(
        "--fidelity",
        choices=FIDELITIES,
        help="simulator fidelity preset (default: the matrix file's, else ideal)",
    )
    p.add_argument(
        "--out",
        type=Path,
        help="folder for the matrix's files (default: matrix/<policy>-<preset>-<fidelity>)",
    )
    p.add_argument(
        "--store",
        action="store_true",
        help="also write the matrix into a models/<name> folder's policy.yaml, heatmap beside it",
    )


def command_line(args: argparse.Namespace, name: str, fidelity: str) -> str:
    """The `swarm eval` command that reproduces this matrix."""
    parts = ["swarm eval", str(args.target), "--matrix", args.matrix, "--fidelity", fidelity]
    if args.episodes is not None:
        parts += ["--episodes", str(args.episodes)]
    if args.seed is not None:
        parts += ["--seed", str(args.seed)]
    if args.no_safety_layer:
        parts.append("--no-safety-layer")
    return " ".join(parts)


def run(args: argparse.Namespace) -> int:
    """`swarm eval --matrix`: returns the exit code."""
    misplaced = [flag for key, flag in SINGLE_EVAL_ONLY.items() if getattr(args, key) is not None]
    if misplaced:
        print(
            f"error: {', '.join(misplaced)} shape(s) one evaluation; with --matrix the matrix's"
            " rows (sim keys) and team_sizes do that: drop them, or put them in a matrix YAML",
            file=sys.stderr,
        )
        return 2
    try:
        name, spec = load_matrix(args.matrix)
        if args.episodes is not None:
            if args.episodes < 1:
                raise ConfigError(f"--episodes {args.episodes}: must be >= 1")
            spec.episodes = args.episodes
        if args.seed is not None:
            spec.seed = args.seed
        fidelity = args.fidelity or spec.fidelity
        card = args.target / "policy.yaml"
        if args.store and not card.is_file():
            raise ConfigError(
                f"--store writes the matrix into a models/<name> folder's policy.yaml, and"
                f" {args.target} has none: export the run first (`swarm export`), or drop --store"
            )
        out = args.out or Path("matrix") / f"{args.target.resolve().stem}-{name}-{fidelity}"
        # With --json, stdout carries only the results: progress goes to stderr.
        log = (lambda *a, **k: print(*a, file=sys.stderr, **k)) if args.json else print
        results = run_matrix(
            args.target,
            name,
            spec,
            fidelity=fidelity,
            command=command_line(args, name, fidelity),
            safety_layer=not args.no_safety_layer,
            log=log,
        )
    except ValueError as err:  # ConfigError, a refused model (PolicyRejected)
        print(f"error: {err}", file=sys.stderr)
        return 2
    files = write_outputs(results, out)
    if args.store:
        card = store_in_card(args.target, results, files["heatmap"])
    if args.json:
        print(json.dumps(results))
        return 0
    print()
    print(text_tables(results))
    print()
    print(summary_line(results))
    for note in results["notes"]:
        print(f"note: {note}")
    minutes, seconds = divmod(results["wall_time_s"], 60)
    print(f"wall time {int(minutes)}m {seconds:.0f}s for {len(results['cells'])} cells")
    print(f"results: {files['results']}, tables: {files['tables']}, heatmap: {files['heatmap']}")
    if args.store:
        print(f"policy card: {card} (matrix: {name} at {fidelity})")
    return 0
