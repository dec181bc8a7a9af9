"""`swarm bench policy`: what one control tick's inference costs on a robot.

Single-observation latency of the exported ONNX file in onnxruntime with one
thread (as the policy node runs it), and, in the same run, of the same policy
in eager PyTorch (the `torch_reference.pt` written beside it by `swarm export`).
Calls alternate in blocks so both see the same machine load.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model_dir", type=Path, help="exported policy folder, e.g. models/default")
    p.add_argument("--calls", type=int, default=10_000, help="timed calls per runtime")
    p.add_argument("--json", action="store_true", help="last line: one JSON object")


def _percentiles(samples_s: list[float]) -> tuple[float, float]:
    us = np.asarray(samples_s) * 1e6
    return float(np.percentile(us, 50)), float(np.percentile(us, 99))


def run(args: argparse.Namespace) -> int:
    import onnxruntime as ort
    import torch

    from mappo_training.export import load_torch_reference, random_observations
    from swarm_contract.robot_io import Contract

    onnx_path = args.model_dir / "robot_0.onnx"
    ref_path = args.model_dir / "torch_reference.pt"
    for path in (onnx_path, ref_path):
        if not path.is_file():
            print(f"error: {path} missing; export a policy with `swarm export` first")
            return 2
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    contract = Contract.from_metadata(session.get_modelmeta().custom_metadata_map)
    torch.set_num_threads(1)
    module = load_torch_reference(ref_path)

    observations = random_observations(contract, 256, seed=5)
    ort_times: list[float] = []
    torch_times: list[float] = []
    block = 500
    with torch.inference_mode():
        for i in range(50):  # warm-up both
            session.run(["cmd_vel"], {"obs": observations[i : i + 1]})
            module(torch.from_numpy(observations[i : i + 1]))
        done = 0
        while done < args.calls:
            n = min(block, args.calls - done)
            for k in range(n):
                obs = observations[(done + k) % 256][None]
                t0 = time.perf_counter()
                session.run(["cmd_vel"], {"obs": obs})
                ort_times.append(time.perf_counter() - t0)
            for k in range(n):
                obs = torch.from_numpy(observations[(done + k) % 256][None])
                t0 = time.perf_counter()
                module(obs)
                torch_times.append(time.perf_counter() - t0)
            done += n
    ort_p50, ort_p99 = _percentiles(ort_times)
    torch_p50, torch_p99 = _percentiles(torch_times)
    print(f"{onnx_path}: {args.calls} single-observation calls each, 1 thread")
    print(f"onnxruntime   p50 {ort_p50:7.1f} us   p99 {ort_p99:7.1f} us")
    print(f"torch eager   p50 {torch_p50:7.1f} us   p99 {torch_p99:7.1f} us")
    print(f"speed-up (p50): {torch_p50 / ort_p50:.1f}x")
    if args.json:
        print(
            json.dumps(
                {
                    "ort_p50_us": round(ort_p50, 2),
                    "ort_p99_us": round(ort_p99, 2),
                    "torch_p50_us": round(torch_p50, 2),
                    "torch_p99_us": round(torch_p99, 2),
                }
            )
        )
    return 0
