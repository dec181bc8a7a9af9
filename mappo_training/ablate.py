"""`swarm ablate`: what each MAPPO trick is worth on a task.

    swarm ablate --config nav_random_4 --variants mappo_tricks --seeds 3 \
        run.total_steps=1.5e6

runs every variant x seed as an ordinary training run folder

    <out>/<variant>/seed_<k>/          (a `swarm train` run: config, checkpoints, eval.yaml)

each through `swarm train` in its own process (so a crash stays one failed
run, and --parallel comes free), then scores each run by its end-of-run
evaluation and writes <out>/ablation.md, results.json and ablation.png: every
variant's interquartile mean over seeds as a percentage of full MAPPO's, with
a bootstrap 95% CI (mappo_training.ablation_stats), beside MAPPO.md's table.

Run it again to continue: a run with eval.yaml is done and skipped, one with
a checkpoint but no eval.yaml is resumed, the rest start.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from mappo_training.experiment import (
    CONFIGS_DIR,
    TrainConfig,
    config_hash,
    config_path,
    load_train_config,
    resolved,
    validate,
)
from swarm_contract.config import ConfigError, load_yaml

PRESETS_DIR = CONFIGS_DIR / "ablations"
DEFAULT_PRESET = "mappo_tricks"
FULL = "full"

MAPPO_REFERENCE = {
    FULL: 100.0,
    "no_shared_critic": 65.0,
    "no_layer_norm": 75.0,
    "no_adv_norm": 70.0,
    "clip_0.3": 85.0,
    "clip_0.1": 90.0,
    # §8.2 gives sharing as 105% of not sharing; our full MAPPO shares, so
    # not sharing is 100/105 of it.
    "no_param_sharing": 100.0 / 1.05,
    "param_sharing": 105.0,
}
"""MAPPO.md §8.2's performance of each variant, % of full MAPPO."""

SCORE_KEYS = {"swarm": "success_rate", "pettingzoo": "mean_return_per_agent"}
"""The end-of-run evaluation's number (eval.yaml) that scores a run, by env.kind."""

RESERVED_KEYS = ("run.seed", "run.name")
"""Set by the runner for every run folder; a variant may not set them."""

FLOOR_EPISODES = 200
FLOOR_SEED = 12345
"""The uniform-random policy's episodes for a return floor: at least 200, from
the seed of the runs' end-of-run evaluation (evaluate.evaluate's default), so
the floor starts from the same episodes the runs are scored on."""


# --------------------------------------------------------------------------- #
# Variants.
# --------------------------------------------------------------------------- #


@dataclass
class Variant:
    name: str
    overrides: list[str]
    note: str = ""


def split_overrides(text: str) -> list[str]:
    """`a.b=1,c.d=[64,64]` -> ['a.b=1', 'c.d=[64,64]']: split at commas that start a new key."""
    return [p for p in re.split(r",(?=\s*[A-Za-z_][\w.]*=)", text) if p.strip()]


def parse_variant_arg(text: str) -> Variant:
    """`--variant name:key=value,key=value`."""
    name, sep, rest = text.partition(":")
    if not sep or not name.strip():
        raise ConfigError(
            f"--variant {text!r} must look like name:key=value,key=value"
            " (e.g. lr_high:algo.actor_lr=1e-3,algo.critic_lr=1e-3)"
        )
    return Variant(name.strip(), [o.strip() for o in split_overrides(rest)])


def load_variants(spec: str) -> list[Variant]:
    """A preset name (configs/ablations/<name>.yaml) or a YAML file of `name: [key=value, ...]`."""
    path = Path(spec)
    if path.suffix not in (".yaml", ".yml"):
        path = PRESETS_DIR / f"{spec}.yaml"
        if not path.is_file():
            known = sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))
            raise ConfigError(
                f"--variants {spec!r}: no such preset; presets: {known}, or give a YAML file"
            )
    if not path.is_file():
        raise ConfigError(f"--variants {spec!r}: file not found")
    data = load_yaml(path) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected `name: [key=value, ...]` entries")
    variants = []
    for name, overrides in data.items():
        overrides = overrides or []
        if isinstance(overrides, str):
            overrides = [overrides]
        if not isinstance(overrides, list) or not all(isinstance(o, str) for o in overrides):
            raise ConfigError(
                f"{path}: variant {name!r} must be a list of key=value strings, got {overrides!r}"
            )
        variants.append(Variant(str(name), list(overrides)))
    return variants


def resolve_variants(
    config: str, extra: list[str], variants: list[Variant]
) -> tuple[list[Variant], dict[str, TrainConfig]]:
    """Validate every variant's overrides before anything runs.

    Returns the variants to run (full first) and each one's config for seed 1.
    A bad key or value is a ConfigError naming the variant. A `no_<trick>`
    variant that changes nothing (the config already has the trick off) is
    turned round into `<trick>` with the keys on; any other variant that
    changes nothing is dropped with a note.
    """
    names = [v.name for v in variants]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(f"variant name(s) {duplicates} given twice; names must be unique")
    for bad in (n for n in names if not re.fullmatch(r"[\w.+-]+", n)):
        raise ConfigError(
            f"variant name {bad!r}: use letters, digits, '_', '.', '+' or '-' (it names a folder)"
        )
    for item in extra:
        _refuse_reserved("the command line's overrides", item)
    if FULL not in names:
        variants = [Variant(FULL, []), *variants]
    variants = sorted(variants, key=lambda v: v.name != FULL)

    def load(variant: Variant) -> TrainConfig:
        for item in variant.overrides:
            _refuse_reserved(f"variant {variant.name!r}", item)
        try:
            return load_train_config(config, [*extra, *variant.overrides, "run.seed=1"])
        except ConfigError as err:
            raise ConfigError(f"variant {variant.name!r}: {err}") from err

    full_cfg = load(variants[0])
    if not full_cfg.run.eval_episodes:
        raise ConfigError(
            "run.eval_episodes=0: each run is scored by its end-of-run evaluation;"
            " give run.eval_episodes=50 (say)"
        )
    full_hash = config_hash(full_cfg)
    kept, configs = [variants[0]], {FULL: full_cfg}
    for variant in variants[1:]:
        cfg = load(variant)
        if config_hash(cfg) == full_hash:
            turned = _turned_round(variant)
            if turned is None:
                print(
                    f"note: variant {variant.name!r} ({' '.join(variant.overrides)}) is what"
                    " the config already has: dropped"
                )
                continue
            print(
                f"note: the config already has {' '.join(variant.overrides)}, so"
                f" {variant.name!r} becomes {turned.name!r} ({' '.join(turned.overrides)})"
            )
            variant, cfg = turned, load(turned)
        kept.append(variant)
        configs[variant.name] = cfg
    return kept, configs


def _refuse_reserved(where: str, item: str) -> None:
    key = item.split("=", 1)[0].strip()
    if key in RESERVED_KEYS:
        raise ConfigError(
            f"{where}: {key} is set by `swarm ablate` for each run (seeds 1..--seeds,"
            " folders seed_<k>); drop it"
        )


def _turned_round(variant: Variant) -> Variant | None:
    """no_<trick> with every key =false -> <trick> with every key =true."""
    if not variant.name.startswith("no_") or not variant.overrides:
        return None
    keys = []
    for item in variant.overrides:
        key, _, value = item.partition("=")
        if yaml.safe_load(value) is not False:
            return None
        keys.append(key.strip())
    return Variant(
        variant.name.removeprefix("no_"),
        [f"{k}=true" for k in keys],
        note=f"turned round: the config already has {' '.join(variant.overrides)}",
    )


# --------------------------------------------------------------------------- #
# Runs.
# --------------------------------------------------------------------------- #


@dataclass
class PlannedRun:
    variant: str
    seed: int
    run_dir: Path
    argv: list[str]
    action: str = "start"
    """start | resume | done"""
    score: float | None = None
    wall_s: float | None = None
    error: str = ""

    @property
    def label(self) -> str:
        return f"{self.variant} seed {self.seed}"

    @property
    def log(self) -> Path:
        return self.run_dir / "train.log"


def plan_runs(
    config: str,
    extra: list[str],
    variants: list[Variant],
    configs: dict[str, TrainConfig],
    seeds: int,
    out: Path,
) -> list[PlannedRun]:
    """Every variant x seed, with what to do for each (start, resume or skip).

    A run folder already holding a run of another config is an error: its
    numbers would be mixed into this ablation.
    """
    conflicts, runs = [], []
    cfg_file = str(config_path(config))
    for variant in variants:
        for seed in range(1, seeds + 1):
            run_dir = out / variant.name / f"seed_{seed}"
            argv = [
                *("train", "--quiet", "--config", cfg_file, "--runs-dir", str(run_dir.parent)),
                *extra,
                *variant.overrides,
                f"run.seed={seed}",
                f"run.name={run_dir.name}",
            ]
            run = PlannedRun(variant.name, seed, run_dir, argv)
            if (run_dir / "config.yaml").is_file():
                want = config_hash(_with_seed(configs[variant.name], seed))
                have = config_hash(validate(load_yaml(run_dir / "config.yaml")))
                if have != want:
                    conflicts.append(str(run_dir))
            if (run_dir / "eval.yaml").is_file():
                run.action = "done"
            elif (run_dir / "latest.pt").exists():
                run.action = "resume"
                run.argv = ["train", "--quiet", "--resume", str(run_dir)]
            runs.append(run)
    if conflicts:
        raise ConfigError(
            f"{len(conflicts)} run folder(s) hold runs of another config than this command"
            f" gives them, e.g. {conflicts[0]}: use another --out, or delete them"
        )
    return runs


def _with_seed(cfg: TrainConfig, seed: int) -> TrainConfig:
    data = resolved(cfg)
    data["run"]["seed"] = seed
    return validate(data)


def execute(runs: list[PlannedRun], parallel: int, score_key: str) -> bool:
    """Run the planned runs, `parallel` at a time, printing a line per run
    started and finished. Returns False if interrupted (Ctrl-C reaches the
    runs too: each saves a checkpoint, and the next call resumes it)."""
    todo = [r for r in runs if r.action != "done"]
    for run in runs:
        if run.action == "done":
            run.score = read_score(run.run_dir, score_key)
            print(f"done already: {run.label} ({run.run_dir})")
    total, started = len(todo), 0
    active: list[tuple[PlannedRun, subprocess.Popen, float]] = []
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    try:
        while todo or active:
            while todo and len(active) < parallel:
                run = todo.pop(0)
                started += 1
                run.run_dir.mkdir(parents=True, exist_ok=True)
                with open(run.log, "a") as log:
                    log.write(f"$ swarm {' '.join(run.argv)}\n")
                    log.flush()
                    proc = subprocess.Popen(
                        [sys.executable, "-m", "mappo_training.cli", *run.argv],
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        env=env,
                    )
                verb = "resume" if run.action == "resume" else "start"
                print(f"[{started}/{total}] {verb} {run.label}: {run.run_dir}", flush=True)
                active.append((run, proc, time.perf_counter()))
            time.sleep(0.2)
            for item in [a for a in active if a[1].poll() is not None]:
                active.remove(item)
                _finished(*item, score_key)
    except KeyboardInterrupt:
        # The runs got the Ctrl-C too and are saving a checkpoint.
        for run, proc, t0 in active:
            proc.wait()
            _finished(run, proc, t0, score_key)
        print("interrupted: run the same command again to continue", file=sys.stderr)
        return False
    return True


INTERRUPTED = (130, -signal.SIGINT)
"""Exit codes of a `swarm train` stopped by Ctrl-C (it saved a checkpoint first)."""


def _finished(run: PlannedRun, proc: subprocess.Popen, t0: float, score_key: str) -> None:
    run.wall_s = time.perf_counter() - t0
    took = _duration(run.wall_s)
    if proc.returncode in INTERRUPTED:
        print(f"interrupted {run.label} after {took}: it resumes next time", flush=True)
        return
    score = read_score(run.run_dir, score_key) if proc.returncode == 0 else None
    if score is None:
        why = f"exit {proc.returncode}" if proc.returncode else f"no {score_key} in eval.yaml"
        run.error = f"{why}; log: {run.log}"
        print(f"FAILED {run.label} after {took} ({run.error})", flush=True)
        return
    run.score = score
    print(f"finished {run.label}: {score_key} {score:.4g} in {took}", flush=True)


def read_score(run_dir: Path, key: str) -> float | None:
    """The run's end-of-run evaluation score, None if it has none."""
    path = run_dir / "eval.yaml"
    if not path.is_file():
        return None
    value = (yaml.safe_load(path.read_text()) or {}).get(key)
    return None if value is None else float(value)


def _duration(seconds: float) -> str:
    return f"{int(seconds // 60)}m{seconds % 60:04.1f}s" if seconds >= 60 else f"{seconds:.1f}s"


# --------------------------------------------------------------------------- #
# Scores.
# --------------------------------------------------------------------------- #


def score_floor(cfg: TrainConfig, out: Path) -> float:
    """What zero learning scores: 0 success, or the uniform-random policy's mean
    return per agent (measured once per ablation, kept in <out>/floor.yaml)."""
    if cfg.env.kind == "swarm":
        return 0.0
    path = out / "floor.yaml"
    if path.is_file():
        return float(yaml.safe_load(path.read_text())["mean_return_per_agent"])
    from mappo_training.pettingzoo_eval import evaluate_pettingzoo

    episodes = max(FLOOR_EPISODES, cfg.run.eval_episodes)
    report = evaluate_pettingzoo(cfg, "random", episodes=episodes, seed=FLOOR_SEED)
    floor = float(report["mean_return_per_agent"])
    out.mkdir(parents=True, exist_ok=True)
    path.write_text(
        yaml.safe_dump(
            {
                "policy": "uniform random",
                "episodes": episodes,
                "seed": FLOOR_SEED,
                "mean_return_per_agent": floor,
            },
            sort_keys=False,
        )
    )
    print(f"floor: a uniform-random policy scores {floor:.4g} return per agent ({path})")
    return floor


@dataclass
class VariantResult:
    name: str
    overrides: list[str]
    scores: list[float]
    seeds: int
    iqm: float
    percent: float
    low: float
    high: float
    reference: float | None
    note: str = ""
    failed: list[str] = field(default_factory=list)


def summarize(
    variants: list[Variant], runs: list[PlannedRun], seeds: int, floor: float
) -> list[VariantResult]:
    from mappo_training.ablation_stats import iqm, percent_of_full_ci

    by_variant = {
        v.name: [r.score for r in runs if r.variant == v.name and r.score is not None]
        for v in variants
    }
    full = by_variant[FULL]
    out = []
    for v in variants:
        scores = by_variant[v.name]
        ci = percent_of_full_ci(scores, full, floor)
        out.append(
            VariantResult(
                v.name,
                v.overrides,
                scores,
                seeds,
                iqm(scores),
                ci.value,
                ci.low,
                ci.high,
                MAPPO_REFERENCE.get(v.name),
                v.note,
                [r.error for r in runs if r.variant == v.name and r.error],
            )
        )
    return out


def _fmt_score(x: float, key: str) -> str:
    if math.isnan(x):
        return "–"
    return f"{100 * x:.1f}%" if key == "success_rate" else f"{x:.2f}"


def _fmt_pct(r: VariantResult) -> str:
    if math.isnan(r.percent):
        return "–"
    ci = "" if math.isnan(r.low) else f" [{r.low:.0f}, {r.high:.0f}]"
    return f"{r.percent:.0f}%{ci}"


def markdown_table(results: list[VariantResult], score_key: str) -> str:
    head = "IQM success rate" if score_key == "success_rate" else "IQM return per agent"
    lines = [
        f"| variant | overrides | seeds done | {head} | % of full MAPPO [95% CI]"
        " | MAPPO.md §8.2 | per seed |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        overrides = " ".join(f"`{o}`" for o in r.overrides) or "–"
        ref = "–" if r.reference is None else f"{r.reference:.0f}%"
        per_seed = ", ".join(_fmt_score(x, score_key) for x in r.scores) or "–"
        lines.append(
            f"| {r.name} | {overrides} | {len(r.scores)}/{r.seeds} |"
            f" {_fmt_score(r.iqm, score_key)} | {_fmt_pct(r)} | {ref} | {per_seed} |"
        )
    return "\n".join(lines)


def plot(results: list[VariantResult], path: Path, title: str) -> Path:
    """Horizontal bars (% of full MAPPO) with CI whiskers and MAPPO.md's marks."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r.name for r in results][::-1]
    rows = results[::-1]
    y = range(len(rows))
    pct = [0.0 if math.isnan(r.percent) else r.percent for r in rows]
    err = [
        [
            0.0 if math.isnan(r.low) else max(0.0, r.percent - r.low),
            0.0 if math.isnan(r.high) else max(0.0, r.high - r.percent),
        ]
        for r in rows
    ]
    fig, ax = plt.subplots(figsize=(7.5, 0.35 * len(rows) + 1.8))
    ax.barh(
        list(y),
        pct,
        xerr=list(zip(*err, strict=True)) if rows else None,
        color="#4c72b0",
        capsize=3,
        label="ours: IQM over seeds, 95% CI",
    )
    for i, r in enumerate(rows):
        if not math.isnan(r.percent):
            end = r.percent if math.isnan(r.high) else max(r.percent, r.high)
            ax.text(end + 2, i, f"{r.percent:.0f}%", va="center", fontsize=8)
    refs = [(i, r.reference) for i, r in enumerate(rows) if r.reference is not None]
    if refs:
        ax.plot(
            [v for _, v in refs],
            [i for i, _ in refs],
            "D",
            color="#c44e52",
            label="MAPPO.md §8.2",
        )
    ax.axvline(100, color="grey", lw=0.8, ls="--")
    ax.margins(x=0.1)  # room for the labels right of the whiskers
    ax.set_yticks(list(y), names)
    ax.set_xlabel("% of full MAPPO")
    fig.suptitle(title, fontsize=10)
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, fontsize=8, frameon=False)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_report(
    out: Path,
    results: list[VariantResult],
    runs: list[PlannedRun],
    *,
    config: str,
    cfg: TrainConfig,
    score_key: str,
    floor: float,
    command: str,
) -> str:
    """ablation.md, results.json and ablation.png in `out`; returns the markdown."""
    budget = f"{cfg.run.total_steps:,} robot-steps, {cfg.run.eval_episodes} evaluation episodes"
    floor_text = (
        "success rate, floor 0"
        if score_key == "success_rate"
        else f"mean return per agent, floor {floor:.4g} (uniform-random policy)"
    )
    table = markdown_table(results, score_key)
    failed = [e for r in results for e in r.failed]
    notes = [f"- {r.name}: {r.note}" for r in results if r.note]
    text = "\n".join(
        [
            f"# Ablation of {config} ({dt.date.today():%Y-%m-%d})",
            "",
            f"Command: `{command}`",
            "",
            f"Budget per run: {budget}. Score: {floor_text}."
            " % of full = 100 x (IQM - floor) / (full's IQM - floor); the 95% CI is a"
            " bootstrap over seeds (both variants resampled).",
            "",
            table,
            "",
            *(["Notes:", *notes, ""] if notes else []),
            *(["Failed runs:", *(f"- {e}" for e in failed), ""] if failed else []),
        ]
    )
    out.mkdir(parents=True, exist_ok=True)
    (out / "ablation.md").write_text(text)
    (out / "results.json").write_text(
        json.dumps(
            {
                "config": config,
                "command": command,
                "score": score_key,
                "floor": floor,
                "total_steps": cfg.run.total_steps,
                "eval_episodes": cfg.run.eval_episodes,
                "variants": [
                    {
                        k: (None if isinstance(v, float) and math.isnan(v) else v)
                        for k, v in r.__dict__.items()
                    }
                    for r in results
                ],
                "runs": [
                    {
                        "variant": r.variant,
                        "seed": r.seed,
                        "run_dir": str(r.run_dir),
                        "score": r.score,
                        "wall_s": r.wall_s,
                        "error": r.error,
                    }
                    for r in runs
                ],
            },
            indent=2,
        )
    )
    seeds = max((r.seeds for r in results), default=0)
    plot(
        results,
        out / "ablation.png",
        f"{Path(config).stem}: {cfg.run.total_steps:,} robot-steps, {seeds} seeds",
    )
    return text


# --------------------------------------------------------------------------- #
# The command.
# --------------------------------------------------------------------------- #


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.epilog = (
        "Each run is a `swarm train` process with its own run.workers simulator\n"
        "processes on top: --parallel 2 with run.workers=2 keeps 6 processes busy.\n"
        "Run the same command again to continue an ablation that stopped."
    )
    p.add_argument("--config", required=True, help="packaged config name or YAML path")
    p.add_argument(
        "--variants",
        default=DEFAULT_PRESET,
        help=f"a preset (configs/ablations/<name>.yaml) or a YAML file of"
        f" `name: [key=value, ...]` (default: {DEFAULT_PRESET}); `full` is always run",
    )
    p.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME:KEY=VALUE,...",
        help="one more variant given as overrides (repeatable)",
    )
    p.add_argument(
        "--only",
        help="run only these variants of --variants, comma-separated (full and"
        " --variant ones always run)",
    )
    p.add_argument("--seeds", type=int, default=3, help="seeds 1..N per variant (default 3)")
    p.add_argument(
        "--out",
        type=Path,
        help="ablation folder (default: runs/ablate-<config>-<date>); give the same to continue",
    )
    p.add_argument(
        "--parallel",
        type=int,
        default=1,
        help="runs at once (default 1); each run's run.workers processes come on top",
    )
    p.add_argument(
        "--report",
        action="store_true",
        help="make the table and plot from the runs already done; start none",
    )
    p.add_argument(
        "overrides", nargs="*", help="overrides for every run: key=value (e.g. run.total_steps=1e6)"
    )


def run(args: argparse.Namespace) -> int:
    try:
        if args.seeds < 1 or args.parallel < 1:
            raise ConfigError(
                f"--seeds {args.seeds} and --parallel {args.parallel} must both be >= 1"
            )
        variants = load_variants(args.variants)
        if args.only:
            wanted = {n.strip() for n in args.only.split(",")} | {FULL}
            unknown = sorted(wanted - {v.name for v in variants} - {FULL})
            if unknown:
                raise ConfigError(
                    f"--only {unknown}: no such variant(s) in --variants {args.variants};"
                    f" it has {[v.name for v in variants]}"
                )
            variants = [v for v in variants if v.name in wanted]
        variants += [parse_variant_arg(v) for v in args.variant]
        extra = list(args.overrides)
        variants, configs = resolve_variants(args.config, extra, variants)
        out = args.out or Path("runs") / f"ablate-{Path(args.config).stem}-{dt.date.today():%Y%m%d}"
        runs = plan_runs(args.config, extra, variants, configs, args.seeds, out)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    full_cfg = configs[FULL]
    score_key = SCORE_KEYS[full_cfg.env.kind]
    command = _command_line(args, out)
    out.mkdir(parents=True, exist_ok=True)
    if not args.report:
        (out / "variants.yaml").write_text(
            yaml.safe_dump({v.name: v.overrides for v in variants}, sort_keys=False)
        )
        (out / "command.txt").write_text(command + "\n")
    print(
        f"ablation folder: {out} ({len(variants)} variants x {args.seeds} seeds;"
        f" {sum(r.action == 'done' for r in runs)} done,"
        f" {sum(r.action == 'resume' for r in runs)} to resume)",
        flush=True,
    )
    floor = score_floor(full_cfg, out)
    walls = _recorded_wall_times(out)
    for r in runs:
        if r.action == "done" or args.report:
            r.wall_s = walls.get(str(r.run_dir))
    if args.report:
        for r in runs:
            r.score = read_score(r.run_dir, score_key)
        finished = True
    else:
        finished = execute(runs, args.parallel, score_key)
    results = summarize(variants, runs, args.seeds, floor)
    text = write_report(
        out,
        results,
        runs,
        config=args.config,
        cfg=full_cfg,
        score_key=score_key,
        floor=floor,
        command=command,
    )
    print()
    print(text)
    print(f"table: {out / 'ablation.md'}, plot: {out / 'ablation.png'}")
    failed = [r for r in runs if r.error]
    if failed:
        print(
            f"error: {len(failed)} run(s) failed: "
            + "; ".join(f"{r.label} ({r.log})" for r in failed),
            file=sys.stderr,
        )
        return 1
    return 0 if finished else 130


def _command_line(args: argparse.Namespace, out: Path) -> str:
    """The command that trains this ablation: as typed; for --report, the one
    recorded when its runs were started (command.txt)."""
    recorded = out / "command.txt"
    if args.report and recorded.is_file():
        return recorded.read_text().strip()
    if sys.argv[1:2] == ["ablate"]:
        return "swarm " + " ".join(a for a in sys.argv[1:] if a != "--report")
    variants = "".join(f" --variant {v}" for v in args.variant)
    return (
        f"swarm ablate --config {args.config} --variants {args.variants}{variants}"
        f" --seeds {args.seeds} --out {out} " + " ".join(args.overrides)
    ).strip()


def _recorded_wall_times(out: Path) -> dict[str, float]:
    """Each run's wall time as results.json recorded it when the run finished."""
    path = out / "results.json"
    if not path.is_file():
        return {}
    runs = json.loads(path.read_text()).get("runs", [])
    return {r["run_dir"]: r["wall_s"] for r in runs if r.get("wall_s") is not None}
