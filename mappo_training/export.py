"""`swarm export`: each robot's actor -> one ONNX file a robot can run alone.

The exported graph is the deterministic policy with everything folded in: the
robot's own observation goes in (float32, dynamic batch), the velocity command
comes out in SI units (mean action, clipped to [-1, 1], scaled by the speed
limits). A shared actor is written once per robot with that robot's id baked
in as a constant. Only local observations go in; the critic never leaves the
training machine.

Before anything is written: `onnx.checker` passes, the file's one input is the
local observation, and onnxruntime agrees with PyTorch to 1e-5 on 10,000 random
observations and on observations recorded in the simulator. A mismatch aborts
the export and leaves the output folder untouched.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import yaml

from mappo_training import checkpoint as ckpt
from swarm_contract.config import ConfigError
from swarm_contract.onnx_policy import weights_sha256
from swarm_contract.robot_io import Contract

PARITY_TOLERANCE = 1e-5
PARITY_RANDOM_OBS = 10_000
OPSET = 17


class ExportError(RuntimeError):
    """The exported graph is invalid or disagrees with PyTorch; nothing was written."""


def deterministic_policy(learner, robot: int, contract: Contract):
    """torch module: robot's observation (B, obs_dim) -> cmd_vel (B, 2) in SI units.

    Mirrors `learner.agent_input(robot, .)` (observation slice, then the robot's
    one-hot id for a shared actor) with the id as a constant, so the graph needs
    nothing but the robot's own observation.
    """
    import torch

    slot = learner.slot_for(robot)
    if slot.spec.kind != "box" or slot.spec.dim != 2:
        raise ExportError(
            f"robot {robot}: only a 2-D continuous action (v, w) can drive a robot,"
            f" this actor has {slot.spec}"
        )
    if slot.obs_dim != contract.obs_dim:
        raise ExportError(
            f"robot {robot}: actor reads {slot.obs_dim} observation values,"
            f" the contract defines {contract.obs_dim}"
        )
    from mappo_training.algo.cmd_vel_policy import CmdVelPolicy

    one_hot = torch.eye(learner.num_agents)[robot] if slot.with_id else None
    actor = copy.deepcopy(learner.actor_for(robot)).cpu().eval()
    return CmdVelPolicy(actor, one_hot, contract.max_linear, contract.max_angular).eval()


def save_torch_reference(module, actor_kwargs: dict, path: Path) -> None:
    """The robot-0 policy as an eager-PyTorch checkpoint, for benchmarks and re-checks."""
    import torch

    torch.save(
        {
            "actor_kwargs": actor_kwargs,
            "state_dict": module.state_dict(),
            "with_id": module.with_id,
        },
        path,
    )


def load_torch_reference(path: Path):
    """Rebuild the eager PyTorch module written by `save_torch_reference`."""
    import torch

    from mappo_training.algo.cmd_vel_policy import CmdVelPolicy
    from mappo_training.algo.networks import GaussianActor

    data = torch.load(path, map_location="cpu", weights_only=True)
    kw = dict(data["actor_kwargs"])
    actor = GaussianActor(kw.pop("in_dim"), kw.pop("act_dim"), kw.pop("hidden_sizes"), **kw)
    one_hot = data["state_dict"]["one_hot"] if data["with_id"] else None
    module = CmdVelPolicy(actor, one_hot, 1.0, 1.0)
    module.load_state_dict(data["state_dict"])
    return module.eval()


def _export_one(module, contract: Contract, path: Path, metadata: dict[str, str]) -> None:
    import torch

    dummy = torch.zeros(1, contract.obs_dim)
    with warnings.catch_warnings():
        # The tracer warns about agent_input's shape check; it is a constant
        # for a fixed observation width, which is exactly what we export.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        # We export with the TorchScript exporter on purpose (the dynamo one needs
        # onnxscript); its deprecation notice is not for our users.
        warnings.simplefilter("ignore", DeprecationWarning)
        _trace_to_onnx(module, dummy, path)
    _finish_model(path, metadata)


def _trace_to_onnx(module, dummy, path: Path) -> None:
    import torch

    torch.onnx.export(
        module,
        (dummy,),
        str(path),
        input_names=["obs"],
        output_names=["cmd_vel"],
        dynamic_axes={"obs": {0: "batch"}, "cmd_vel": {0: "batch"}},
        opset_version=OPSET,
        dynamo=False,
    )


def _finish_model(path: Path, metadata: dict[str, str]) -> None:
    import onnx

    model = onnx.load(str(path))
    inputs = [
        i.name for i in model.graph.input if i.name not in {x.name for x in model.graph.initializer}
    ]
    if inputs != ["obs"]:
        raise ExportError(
            f"exported graph takes {inputs}; a robot's policy may take only its own"
            " observation ('obs'), never the global state"
        )
    meta = dict(metadata)
    # The robot's own definition, so the robot's check and this stamp cannot disagree.
    meta["policy.weights_sha256"] = weights_sha256(model.SerializeToString())
    for key, value in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    model.producer_name = "mappo_training"
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))


def check_parity(module, path: Path, observations: np.ndarray) -> float:
    """Largest |onnxruntime - torch| over the observations; raises past tolerance."""
    import onnxruntime as ort
    import torch

    from mappo_training.algo.networks import float32_matmuls

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    with torch.no_grad(), float32_matmuls():
        expected = module(torch.as_tensor(observations)).numpy()
    got = session.run(["cmd_vel"], {"obs": observations})[0]
    worst = float(np.max(np.abs(got - expected)))
    if not worst <= PARITY_TOLERANCE:
        raise ExportError(
            f"{path.name}: onnxruntime differs from PyTorch by {worst:.3g}"
            f" (> {PARITY_TOLERANCE}); the model was not written"
        )
    return worst


def random_observations(contract: Contract, count: int, seed: int = 0) -> np.ndarray:
    """Observations spread over (and a little beyond) every feature's range."""
    rng = np.random.default_rng(seed)
    beams = rng.uniform(0.0, 1.0, (count, contract.num_beams * contract.scan_stack))
    dist = rng.uniform(0.0, 1.0, (count, 1))
    bearing = rng.uniform(-np.pi, np.pi, (count, 1))
    vel = rng.uniform(-1.0, 1.0, (count, 2))
    obs = np.concatenate([beams, dist, np.cos(bearing), np.sin(bearing), vel], axis=1)
    return obs.astype(np.float32)


def recorded_observations(sim: dict, steps: int = 200, seed: int = 7) -> np.ndarray:
    """Observations a robot really sees: a short random-action rollout."""
    from mappo_training.sim import BatchedSwarmEnv, SimConfig
    from swarm_contract.config import from_dict

    env = BatchedSwarmEnv(from_dict(SimConfig, sim, "sim"), num_arenas=2, seed=seed)
    rng = np.random.default_rng(seed)
    try:
        obs, _ = env.reset(seed=seed)
        frames = [obs]
        for _ in range(steps):
            action = rng.uniform(-1, 1, (env.num_arenas, env.num_robots, 2)).astype(np.float32)
            obs, *_ = env.step(action)
            frames.append(obs)
    finally:
        env.close()
    return np.concatenate(frames).reshape(-1, frames[0].shape[-1]).astype(np.float32)


def exported_robots(learner) -> int:
    """How many robot_<i>.onnx files a learner needs: one per robot, except a
    single shared actor without a robot id, which is the same network for
    every robot, so one file drives any number of them (robot k of a fleet
    loads robot_<k mod n>.onnx)."""
    cfg = learner.cfg
    if cfg.share_actor and cfg.agent_id == "none" and len(learner.slots) == 1:
        return 1
    return learner.num_agents


def export_checkpoint(
    checkpoint: Path, out_dir: Path, *, name: str | None = None, eval_episodes: int = 0
) -> dict:
    """Write robot_<i>.onnx for every robot, a policy card and a README."""
    data = ckpt.load(checkpoint)
    config = data["config"]
    contract: Contract = data["contract"]
    if contract is None:
        raise ExportError(
            "this checkpoint's environment has no robot contract; only swarm runs export"
        )
    learner = ckpt.load_learner(data)
    run_dir = checkpoint.parent if checkpoint.name == "latest.pt" else checkpoint.parent.parent
    name = name or out_dir.name
    random_obs = random_observations(contract, PARITY_RANDOM_OBS)
    sim_obs = recorded_observations(config["sim"])
    common = {
        **contract.to_metadata(),
        "policy.name": name,
        "policy.run_id": run_dir.name,
        "policy.config_hash": data["config_hash"],
        "policy.global_step": str(data["global_step"]),
    }
    card_robots = []
    staging = Path(
        tempfile.mkdtemp(
            prefix=f".{name}-", dir=out_dir.parent if out_dir.parent.exists() else None
        )
    )
    try:
        for robot in range(exported_robots(learner)):
            module = deterministic_policy(learner, robot, contract)
            path = staging / f"robot_{robot}.onnx"
            _export_one(module, contract, path, {**common, "policy.agent_id": str(robot)})
            worst_random = check_parity(module, path, random_obs)
            worst_sim = check_parity(module, path, sim_obs)
            if robot == 0:
                cfg = learner.cfg
                save_torch_reference(
                    module,
                    {
                        "in_dim": learner.slot_for(0).in_dim,
                        "act_dim": 2,
                        "hidden_sizes": list(cfg.hidden_sizes),
                        "layer_norm": cfg.layer_norm,
                    },
                    staging / "torch_reference.pt",
                )
            card_robots.append(
                {
                    "file": path.name,
                    "agent_id": robot,
                    "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
                    "parity_max_abs_diff": {"random": worst_random, "simulator": worst_sim},
                }
            )
        card = policy_card(name, data, run_dir, contract, card_robots)
        if eval_episodes:
            card["evaluation"] = evaluate_exported(staging, config["sim"], eval_episodes)
        curves = run_dir / "learning_curves.png"
        if curves.is_file():
            shutil.copyfile(curves, staging / "learning_curves.png")
            card["learning_curves"] = "learning_curves.png"
        (staging / "policy.yaml").write_text(yaml.safe_dump(card, sort_keys=False))
        (staging / "README.md").write_text(policy_readme(card))
        if out_dir.exists():
            shutil.rmtree(out_dir)
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        staging.chmod(0o755)  # mkdtemp makes it private; a model folder is for sharing
        staging.rename(out_dir)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return card


def policy_card(name: str, data: dict, run_dir: Path, contract: Contract, robots: list) -> dict:
    config = data["config"]
    command = (
        (run_dir / "command.txt").read_text().strip() if (run_dir / "command.txt").is_file() else ""
    )
    return {
        "name": name,
        "exported": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "training": {
            "command": command,
            "run": run_dir.name,
            "seed": config["run"]["seed"],
            "robot_steps": data["global_step"],
            "updates": data["update"],
            "wall_time_s": round(data["wall_time"], 1),
            "config_hash": data["config_hash"],
            "config": config,
        },
        "contract": json.loads(json.dumps(contract.__dict__)),
        "io": {
            "input": f"obs float32 [batch, {contract.obs_dim}]",
            "output": "cmd_vel float32 [batch, 2] (v m/s, w rad/s)",
        },
        "robots": robots,
    }


def policy_readme(card: dict) -> str:
    c = card["contract"]
    lines = [
        f"# Policy `{card['name']}`",
        "",
        (
            "One ONNX file, `robot_0.onnx`, for every robot (an id-free shared actor: any"
            " number of robots)"
            if len(card["robots"]) == 1
            else "One ONNX file per robot (`robot_<i>.onnx`)"
        )
        + f", trained by run `{card['training']['run']}`"
        f" for {card['training']['robot_steps']:,} robot-steps ({card['training']['wall_time_s']} s).",
        "",
        f"- Input `obs`: {c['num_beams']} lidar beams x {c['scan_stack']} scans over"
        f" [{c['range_min']}, {c['range_max']}] m, goal distance/bearing, own velocity (see `policy.yaml`).",
        f"- Output `cmd_vel`: (v, w) within ±{c['max_linear']} m/s, ±{c['max_angular']} rad/s,"
        f" every {c['control_period']} s.",
        "",
        "Reproduce: `"
        + (card["training"]["command"] or "swarm train --config <config.yaml in policy.yaml>")
        + "`",
        "",
    ]
    if "evaluation" in card:
        lines += ["## Evaluation (ONNX policy in the simulator, deterministic)", ""]
        lines += [
            "| scenario | robots | episodes | success | collisions | time-to-goal (s) |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for r in card["evaluation"]:
            lines.append(
                f"| {r['scenario']} | {r['robots']} | {r['episodes']} | {100 * r['success_rate']:.1f}%"
                f" | {100 * r['collision_rate']:.1f}% | {r['time_to_goal_s']} |"
            )
        lines.append("")
    if card.get("learning_curves"):
        lines += ["![learning curves](learning_curves.png)", ""]
    return "\n".join(lines)


def evaluate_exported(model_dir: Path, sim: dict, episodes: int) -> list[dict]:
    from mappo_training.evaluate import evaluate

    results = []
    for scenario, robots in (("random", sim.get("num_robots", 4)), ("circle", 8)):
        results.append(
            evaluate(model_dir, episodes=episodes, scenario=scenario, robots=robots, sim_base=sim)
        )
    return results


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("target", type=Path, help="run folder or checkpoint (.pt)")
    p.add_argument("--out", type=Path, required=True, help="output folder, e.g. models/<name>")
    p.add_argument("--name", help="policy name (default: the output folder's name)")
    p.add_argument(
        "--eval-episodes",
        type=int,
        default=0,
        help="evaluate the ONNX files and put the scores on the card",
    )


def run(args: argparse.Namespace) -> int:
    try:
        card = export_checkpoint(
            ckpt.resolve_target(args.target),
            args.out,
            name=args.name,
            eval_episodes=args.eval_episodes,
        )
    except (ConfigError, ckpt.CheckpointError, ExportError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for robot in card["robots"]:
        diff = robot["parity_max_abs_diff"]
        print(
            f"{args.out / robot['file']}: parity random {diff['random']:.1e}, simulator {diff['simulator']:.1e}"
        )
    print(f"policy card: {args.out / 'policy.yaml'}")
    return 0
