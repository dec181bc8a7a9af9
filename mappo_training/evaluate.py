"""`swarm eval`: score a policy with deterministic actions in the simulator.

Reports the team-task numbers a user decides with: episode success rate (all
robots at their goals, no collision), collision rate, mean time-to-goal and
path efficiency, for any scenario and robot count. A shared actor trained on N
robots also drives more: robot j uses agent id j mod N.

Every simulated robot drives through the robot's own safety layer
(`swarm_contract.safety_layer`, one per robot, limits from the robot profile,
fed the same scan its observation was built from): the acceleration ramp and
the stop zone act in `swarm eval` exactly as on the robot, and the report
says how often the stop zone cut motion, so a policy that leans on it shows.
Scores can therefore differ from numbers measured before the safety layer
existed (policies are trained without it); `--no-safety-layer` measures the
bare policy, as those older numbers did.

A run trained on a PettingZoo env (env.kind=pettingzoo) is scored on that env
instead, by pettingzoo_eval: mean episode return per agent, its spread, the
mean episode length, and the success rate where the env reports success.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
import yaml

from mappo_training import checkpoint as ckpt
from mappo_training.sim.safety import SimSafety
from swarm_contract.config import ConfigError


class Policy:
    """Deterministic actions for (E, N, obs_dim) observations."""

    num_robots_trained: int
    uses_agent_id: bool = False
    """Each robot's input carries its index: trained for exactly
    num_robots_trained robots, robot j of more runs as robot j mod that."""

    def act(self, obs: np.ndarray) -> np.ndarray:  # pragma: no cover - interface
        raise NotImplementedError


class CheckpointPolicy(Policy):
    """A checkpoint's actors, run in torch (training-side evaluation)."""

    def __init__(self, data: dict) -> None:
        self.learner = ckpt.load_learner(data)
        algo = self.learner.cfg
        self.num_robots_trained = self.learner.num_agents
        self.shared = bool(algo.share_actor)
        self.uses_agent_id = self.shared and algo.agent_id == "onehot"

    def act(self, obs: np.ndarray) -> np.ndarray:
        e, n, d = obs.shape
        m = self.num_robots_trained
        if n == m:
            actions, _ = self.learner.act(obs, deterministic=True)
            return actions
        if not self.shared:
            raise ConfigError(
                f"this policy has one actor per robot for {m} robots; it cannot drive {n}."
                f" Evaluate with --robots {m}, or train with algo.share_actor=true"
            )
        # The shared actor reads each robot's row alone, so the rows that fill
        # the last group of m are copies whose actions are dropped. A team
        # smaller than half the trained slots (4 of 16) needs several copies.
        groups = math.ceil(n / m)
        padded = np.take(obs, np.arange(groups * m) % n, axis=1)
        actions, _ = self.learner.act(padded.reshape(e * groups, m, d), deterministic=True)
        return actions.reshape(e, groups * m, -1)[:, :n]


class ExportedPolicy(Policy):
    """A models/<name> folder run exactly as robots run it: one ONNX file per
    robot through onnxruntime, its (v, w) clamped by robot_io, then (in
    `run_episodes`) through the safety layer to the simulated robot."""

    def __init__(self, model_dir: Path, robot_contract) -> None:
        from swarm_contract.onnx_policy import OnnxPolicy

        files = sorted(model_dir.glob("robot_*.onnx"), key=lambda p: int(p.stem.split("_")[1]))
        if not files:
            raise ConfigError(
                f"{model_dir} holds no robot_<i>.onnx files; export one with `swarm export`"
            )
        self.robots = [OnnxPolicy.load(f, robot_contract=robot_contract) for f in files]
        self.num_robots_trained = len(self.robots)
        self.contract = self.robots[0].contract
        card = model_dir / "policy.yaml"
        if card.is_file():
            algo = yaml.safe_load(card.read_text())["training"]["config"].get("algo", {})
            self.uses_agent_id = algo.get("share_actor", True) and algo.get("agent_id") == "onehot"

    def act(self, obs: np.ndarray) -> np.ndarray:
        from swarm_contract.robot_io import clamp_twist

        e, n, _ = obs.shape
        c = self.contract
        actions = np.zeros((e, n, 2), np.float32)
        for j in range(n):
            cmd = self.robots[j % self.num_robots_trained].infer(obs[:, j])
            for k in range(e):
                v, w = clamp_twist(float(cmd[k, 0]), float(cmd[k, 1]), c.max_linear, c.max_angular)
                actions[k, j] = (v / c.max_linear, w / c.max_angular)
        return actions


def evaluate(
    target: Path,
    *,
    episodes: int = 50,
    scenario: str | None = None,
    robots: int | None = None,
    seed: int = 12345,
    render: Path | None = None,
    start_jitter: float | None = None,
    sim_base: dict | None = None,
    safety_layer: bool = True,
    overrides: dict | None = None,
) -> dict:
    """Score a policy in the simulator: a models/<name> folder through robot_io
    and onnxruntime, as robots run it, or a run folder or checkpoint (.pt) in torch.

    sim_base: the task to score an exported folder on (default: its policy.yaml's).
    safety_layer: drive every robot through the robot's safety layer (acceleration
    ramp, stop zone), as the policy node does; False scores the bare policy.
    overrides: further sim keys set on the task (sections merged key by key),
    e.g. {"num_obstacles": 6} or {"fidelity": {"preset": "nominal"}}: a matrix cell.
    """
    from mappo_training.sim import SimConfig
    from swarm_contract.config import from_dict

    if target.is_dir() and any(target.glob("robot_*.onnx")):
        if sim_base is None:
            card_path = target / "policy.yaml"
            if not card_path.is_file():
                raise ConfigError(f"{target} has no policy.yaml to take the task from")
            sim_base = yaml.safe_load(card_path.read_text())["training"]["config"]["sim"]
        sim = task(sim_base, scenario, robots, start_jitter, overrides)
        policy: Policy = ExportedPolicy(target, from_dict(SimConfig, sim, "sim").contract())
    else:
        target = ckpt.resolve_target(target)
        data = ckpt.load(target)
        policy = CheckpointPolicy(data)
        if data["config"].get("env", {}).get("kind") == "pettingzoo":
            options = {
                "--scenario": scenario,
                "--robots": robots,
                "--start-jitter": start_jitter,
                "--render": render,
                "sim overrides (--matrix, --fidelity)": overrides or None,
            }
            return score_pettingzoo(policy, target, data, episodes, seed, options)
        sim = task(data["config"]["sim"], scenario, robots, start_jitter, overrides)
    return score(policy, str(target), sim, episodes, seed, render, safety_layer)


def score_pettingzoo(
    policy: CheckpointPolicy, target: Path, data: dict, episodes: int, seed: int, options: dict
) -> dict:
    """A PettingZoo run scored on its own env (env.factory, env.kwargs) by its
    deterministic actors: pettingzoo_eval's report. The options that shape our
    swarm task do not apply there, and one that is given is refused by name;
    there is no safety layer (it belongs to our robots)."""
    from mappo_training.experiment import validate
    from mappo_training.pettingzoo_eval import evaluate_pettingzoo

    given = [name for name, value in options.items() if value is not None]
    if given:
        raise ConfigError(
            f"{target} is a PettingZoo run (env.kind=pettingzoo), and {', '.join(given)}"
            " set our swarm task: drop them (the run's env.kwargs set its task)"
        )
    report = evaluate_pettingzoo(validate(data["config"]), policy.act, episodes=episodes, seed=seed)
    report["policy"] = str(target)
    return report


def task(
    sim_base: dict,
    scenario: str | None,
    robots: int | None,
    start_jitter: float | None = None,
    overrides: dict | None = None,
) -> dict:
    """The sim config trained on, with the scenario, robot count and start jitter asked for.

    A run trained on a mix (episode variants, team sizes, a curriculum) is
    scored on exactly the scenario or team asked for: the mix is dropped.
    Asked for neither, it is scored on its mix as the curriculum ends (the
    last stage), the task it was trained for: a fresh simulator would start
    at the first stage, the easiest, and promote itself while being scored.
    `overrides` sets further sim keys (a section in both is merged key by key)."""
    sim = final_stage(merge(sim_base, overrides or {}))
    if scenario:
        sim["scenario"] = scenario
        sim.pop("variants", None)
        sim.pop("curriculum", None)
    if robots:
        sim["num_robots"] = robots
        for key in ("team_sizes", "curriculum"):
            sim.pop(key, None)
    if start_jitter is not None:
        sim["start_jitter"] = start_jitter
    return sim


def final_stage(sim: dict) -> dict:
    """`sim` with its curriculum (if any) replaced by the last stage's keys."""
    curriculum = sim.get("curriculum")
    if not curriculum:
        return sim
    stages = curriculum.get("stages") or [{}]
    out = {key: value for key, value in sim.items() if key != "curriculum"}
    out.update(stages[-1] or {})
    return out


REPLACED_SECTIONS = ("fidelity",)
"""Sections an override replaces whole: a fidelity preset asked for is that
preset, not the training run's randomisation ranges with another name on."""


def merge(base: dict, overrides: dict) -> dict:
    """`base` with `overrides` set on it; a section (mapping) in both is merged
    key by key (so {"reward": {"time": 0}} keeps the other weights), except the
    REPLACED_SECTIONS."""
    out = dict(base)
    for key, value in overrides.items():
        if key in REPLACED_SECTIONS:
            out[key] = value
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def score(
    policy: Policy,
    label: str,
    sim: dict,
    episodes: int,
    seed: int,
    render: Path | None,
    safety_layer: bool = True,
) -> dict:
    """Run the episodes and build the report (with a picture when asked)."""
    results, recording = run_episodes(
        policy,
        sim,
        episodes,
        seed=seed,
        record_first=render is not None,
        safety_layer=safety_layer,
    )
    report = {
        "policy": label,
        "scenario": sim.get("scenario"),
        "robots": sim.get("num_robots"),
        **summarize(results),
        "safety_layer": safety_layer,
    }
    if safety_layer:
        report.update(stop_zone_numbers(results))
    if sim.get("start_jitter"):
        report["start_jitter_m"] = sim["start_jitter"]
    mix = training_mix(sim)
    if mix:
        report["mix"] = mix
    robots, trained = sim.get("num_robots"), policy.num_robots_trained
    if policy.uses_agent_id and robots != trained:
        report["note"] = (
            f"this policy was trained for {trained} robots with each robot's index as input;"
            f" with {robots}, robot j runs as robot j mod {trained}"
            + (", so indices repeat" if robots > trained else "")
            + f" (use --robots {trained}, or a policy trained with algo.agent_id=none)"
        )
    if render is not None and recording is not None:
        report["render"] = str(render_episode(recording, render))
    return report


def run_episodes(
    policy: Policy,
    sim: dict,
    episodes: int,
    *,
    seed: int = 12345,
    arenas: int = 8,
    record_first: bool = False,
    safety_layer: bool = True,
) -> tuple[list[dict], dict | None]:
    """Run exactly `episodes` episodes spread evenly over the arenas.

    Each arena contributes a fixed quota, so short episodes are not
    over-represented. Returns the per-episode dicts and, if asked, a recording
    of arena 0's first episode for pictures. With the safety layer, each
    episode dict also holds its robots' `stop_zone_cuts` and `driving_steps`.
    """
    from mappo_training.sim import BatchedSwarmEnv, SimConfig
    from swarm_contract.config import from_dict

    arenas = max(1, min(arenas, episodes))
    quota = [episodes // arenas + (1 if a < episodes % arenas else 0) for a in range(arenas)]
    # The safety layer is this function's to apply (or not, when asked): a
    # policy trained with sim.safety_layer must not drive through two.
    sim = {**sim, "safety_layer": False}
    env = BatchedSwarmEnv(from_dict(SimConfig, sim, "sim"), num_arenas=arenas, seed=seed)
    done = [0] * arenas
    results: list[dict] = []
    recorder = None
    try:
        obs, _ = env.reset(seed=seed)
        safety = SimSafety(env) if safety_layer else None
        if record_first:
            from mappo_training.sim import EpisodeRecorder

            recorder = EpisodeRecorder(env, arena=0)
        while sum(done) < episodes:
            actions = policy.act(obs)
            if safety:
                actions = safety.apply(actions)
            obs, _, _, _, _, info = env.step(actions)
            if recorder:
                recorder.add(info)
            for ep in info.get("episodes", []):
                a = ep["arena"]
                if safety:
                    ep.update(safety.end_episode(a))
                if done[a] < quota[a]:
                    results.append(ep)
                    done[a] += 1
    finally:
        env.close()
    return results, (recorder.recording() if recorder else None)


def summarize(results: list[dict]) -> dict:
    """`swarm eval`'s numbers: the episodes' rates and means (sim.episodes.summarize)
    to 4 decimal places."""
    from mappo_training.sim.episodes import summarize as summarize_episodes

    scores = summarize_episodes(results)
    # The return measures the training reward, not the task; it stays in the training logs.
    del scores["episodic_return"]
    return {key: None if value is None else round(value, 4) for key, value in scores.items()}


def training_mix(sim: dict) -> dict | None:
    """What a task scored on a mix draws per episode, or None for one fixed task.

    A run's end-of-run evaluation plays its own training mix, where
    `scenario` and `num_robots` are only the base and the robot slots: the
    report must not read as one scenario with the largest team."""
    variants = sim.get("variants") or []
    sizes = sim.get("team_sizes")
    if not (variants or sizes):
        return None
    return {
        "variants": len(variants),
        "team_sizes": list(sizes) if sizes else [sim.get("num_robots")],
    }


def stop_zone_numbers(results: list[dict]) -> dict:
    """How often the safety layer's stop zone cut motion in these episodes:
    cuts per robot-episode, per 1000 robot-steps driven, and the share of
    episodes in which it cut at least once."""
    cuts = [c for ep in results for c in ep["stop_zone_cuts"]]
    steps = sum(s for ep in results for s in ep["driving_steps"])
    fired = [sum(ep["stop_zone_cuts"]) > 0 for ep in results]
    return {
        "stop_zone_cuts_per_robot_episode": round(float(np.mean(cuts)), 4) if cuts else None,
        "stop_zone_cuts_per_1000_steps": round(1000 * sum(cuts) / steps, 4) if steps else None,
        "stop_zone_episode_share": round(float(np.mean(fired)), 4) if fired else None,
    }


def render_episode(recording: dict, out: Path) -> Path:
    from mappo_training.sim import render

    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == ".gif":
        return render.episode_gif(recording, out)
    return render.episode_png(recording, out)


def print_report(report: dict) -> None:
    if report.get("kind") == "pettingzoo":
        from mappo_training.pettingzoo_eval import print_report as print_pettingzoo

        print_pettingzoo(report)
        return
    pct = lambda x: "n/a" if x is None else f"{100 * x:.1f}%"  # noqa: E731
    jitter = (
        f" (starts jittered, std {report['start_jitter_m']} m)"
        if "start_jitter_m" in report
        else ""
    )
    mix = report.get("mix")
    what = (
        f"training mix ({mix['variants']} episode variants, teams of"
        f" {'/'.join(str(n) for n in sorted(set(mix['team_sizes'])))} robots" + ")"
        if mix
        else f"{report['scenario']} x {report['robots']} robots"
    )
    print(
        f"{what}{jitter}, {report['episodes']} episodes:"
        f" success {pct(report['success_rate'])}, collisions {pct(report['collision_rate'])},"
        f" robots arrived {pct(report['arrived_fraction'])},"
        f" time-to-goal {report['time_to_goal_s']} s, path efficiency {report['path_efficiency']}"
        + (
            f", driven backwards {pct(report['reverse_share'])}"
            if report.get("reverse_share") is not None
            else ""
        )
    )
    if report.get("safety_layer") is False:
        print("safety layer: off (--no-safety-layer), the bare policy drove")
    elif report.get("stop_zone_episode_share") is not None:
        print(
            f"safety layer: stop zone cut motion in {pct(report['stop_zone_episode_share'])}"
            f" of episodes, {report['stop_zone_cuts_per_robot_episode']} cuts per robot-episode"
            f" ({report['stop_zone_cuts_per_1000_steps']} per 1000 robot-steps)"
        )
    if report.get("note"):
        print(f"note: {report['note']}")
    if report.get("render"):
        print(f"picture: {report['render']}")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("target", type=Path, help="run folder, checkpoint (.pt) or models/<name>")
    p.add_argument("--scenario", help="random, circle or swap (default: as trained)")
    p.add_argument("--robots", type=int, help="robots per arena (default: as trained)")
    p.add_argument("--episodes", type=int, help="episodes (default: 50; a matrix's per cell)")
    p.add_argument("--seed", type=int, help="first seed (default: 12345, or the matrix's)")
    p.add_argument(
        "--start-jitter",
        type=float,
        metavar="M",
        help="random offset (std, metres) of circle/swap starts; default: as trained (exact)",
    )
    p.add_argument("--render", type=Path, help="write the first episode as .gif or .png")
    p.add_argument("--json", action="store_true", help="print the report as one JSON line")
    p.add_argument(
        "--no-safety-layer",
        action="store_true",
        help="drive the bare policy, without the robot's acceleration ramp and stop zone",
    )
    from mappo_training import eval_matrix

    eval_matrix.add_arguments(p)


def run(args: argparse.Namespace) -> int:
    from mappo_training import eval_matrix

    if args.matrix:
        return eval_matrix.run(args)
    for flag, given in (("--out", args.out), ("--store", args.store)):
        if given:
            print(
                f"error: {flag} belongs to --matrix; give --matrix <preset|yaml>", file=sys.stderr
            )
            return 2
    args.episodes = 50 if args.episodes is None else args.episodes
    args.seed = 12345 if args.seed is None else args.seed
    if args.episodes < 1:
        print(f"error: --episodes {args.episodes} must be >= 1", file=sys.stderr)
        return 2
    try:
        report = evaluate(
            args.target,
            episodes=args.episodes,
            scenario=args.scenario,
            robots=args.robots,
            seed=args.seed,
            render=args.render,
            start_jitter=args.start_jitter,
            safety_layer=not args.no_safety_layer,
            overrides=eval_matrix.fidelity_override(args.fidelity) if args.fidelity else None,
        )
    except ValueError as err:  # ConfigError, a refused model (PolicyRejected), a bad --robots
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report))
    else:
        print_report(report)
    return 0
