"""Policy files built by hand in the export format: stand-ins for the tests and benchmarks.

Every file is what `swarm export` writes (input "obs", output "cmd_vel", the
contract and provenance metadata, the weights hash), unless a method breaks it
on purpose. `reference_controller` is a hand-designed controller for tests
that need a robot to drive sensibly (to a goal ahead, stopping for a wall), not
a trained policy.

onnx is imported inside the methods: it is a training and test dependency,
not a robot one.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from swarm_contract.onnx_policy import weights_sha256
from swarm_contract.robot_io import Contract

OPSET = 17


class PolicyModels:
    """Writes policy files into the folder `root`; every method returns the file's path."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    # -- the building block ------------------------------------------------- #

    def save(
        self,
        name: str,
        nodes: list,
        weights: dict[str, np.ndarray],
        contract: Contract,
        *,
        agent_id: int = 0,
        inputs: dict[str, int] | None = None,
        metadata: dict[str, str] | None = None,
        drop_metadata: tuple[str, ...] = (),
        policy_name: str = "test-policy",
        run_id: str = "test-run",
    ) -> Path:
        """A graph from `nodes` reading `inputs` (name -> width; default obs) to cmd_vel,
        saved as `root/name`; `metadata` adds to or replaces the exporter's entries."""
        import onnx
        from onnx import TensorProto, helper, numpy_helper

        inputs = inputs or {"obs": contract.obs_dim}
        graph = helper.make_graph(
            nodes,
            "policy",
            [
                helper.make_tensor_value_info(n, TensorProto.FLOAT, ["batch", w])
                for n, w in inputs.items()
            ],
            [helper.make_tensor_value_info("cmd_vel", TensorProto.FLOAT, ["batch", 2])],
            initializer=[
                numpy_helper.from_array(np.asarray(v), name=k) for k, v in weights.items()
            ],
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
        model.ir_version = 8
        meta = {
            **contract.to_metadata(),
            "policy.agent_id": str(agent_id),
            "policy.run_id": run_id,
            "policy.config_hash": "0" * 12,
            "policy.name": policy_name,
            "policy.weights_sha256": weights_sha256(model.SerializeToString()),
            **(metadata or {}),
        }
        for key, value in meta.items():
            if key not in drop_metadata:
                entry = model.metadata_props.add()
                entry.key, entry.value = key, value
        onnx.checker.check_model(model)
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        onnx.save(model, str(path))
        return path

    # -- good policies --------------------------------------------------------- #

    def mlp(
        self,
        name: str = "robot_0.onnx",
        *,
        contract: Contract | None = None,
        agent_id: int = 0,
        hidden: int = 16,
        layers: int = 1,
        activation: str = "Relu",
        seed: int = 0,
        input_name: str = "obs",
        input_width: int | None = None,
        policy_name: str = "test-policy",
        run_id: str = "test-run",
    ) -> Path:
        """obs -> (Linear -> `activation`) x `layers` -> Linear -> Tanh -> Mul [max_v, max_w].

        Random weights (seeded); the shape of an exported actor with
        hidden=256, layers=2, activation="Tanh".
        """
        from onnx import helper

        c = contract or Contract()
        width = input_width or c.obs_dim
        rng = np.random.default_rng(seed)
        sizes = [width, *[hidden] * layers, 2]
        weights: dict[str, np.ndarray] = {}
        nodes = []
        x = input_name
        for k, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
            weights[f"w{k}"] = rng.normal(0, 1 / np.sqrt(n_in), (n_in, n_out)).astype(np.float32)
            weights[f"b{k}"] = rng.normal(0, 0.1, n_out).astype(np.float32)
            squash = activation if k < layers else "Tanh"
            nodes += [
                helper.make_node("MatMul", [x, f"w{k}"], [f"m{k}"]),
                helper.make_node("Add", [f"m{k}", f"b{k}"], [f"z{k}"]),
                helper.make_node(squash, [f"z{k}"], [f"h{k}"]),
            ]
            x = f"h{k}"
        weights["limits"] = np.array([c.max_linear, c.max_angular], np.float32)
        nodes.append(helper.make_node("Mul", [x, "limits"], ["cmd_vel"]))
        return self.save(
            name,
            nodes,
            weights,
            c,
            agent_id=agent_id,
            inputs={input_name: width},
            policy_name=policy_name,
            run_id=run_id,
        )

    def reference_controller(
        self,
        name: str = "robot_0.onnx",
        *,
        contract: Contract | None = None,
        agent_id: int = 0,
        stop_distance: float = 0.3,
        slow_distance: float = 0.8,
        speed_fraction: float = 1.0,
    ) -> Path:
        """TEST FIXTURE controller (hand-designed, not trained).

        v = max_linear * speed_fraction * clearance * clip(cos(bearing), 0, 1) * approach
        w = max_angular * clip(sin(bearing), -1, 1) / 2
        clearance goes 1 -> 0 as the nearest front beam (within +-35 degrees)
        closes from slow_distance to stop_distance; approach slows the last 0.5 m.
        """
        from onnx import helper

        c = contract or Contract()
        nb = c.num_beams
        centres = -math.pi + (np.arange(nb) + 0.5) * 2 * math.pi / nb
        front = np.flatnonzero(np.abs(centres) < math.radians(35)).astype(np.int64)
        base = nb * c.scan_stack  # goal features start after all stacked beams
        span = c.range_max - c.range_min
        f32 = np.float32
        weights = {
            "front_idx": front,
            "dist_idx": np.array([base], np.int64),
            "cos_idx": np.array([base + 1], np.int64),
            "sin_idx": np.array([base + 2], np.int64),
            # metres from a normalised beam: r = b * span + range_min
            "span": f32(span),
            "range_min": f32(c.range_min),
            "stop": f32(stop_distance),
            "band": f32(slow_distance - stop_distance),
            "goal_scale": f32(c.goal_clip / 0.5),
            "zero": f32(0.0),
            "one": f32(1.0),
            "minus_one": f32(-1.0),
            "v_gain": f32(c.max_linear * speed_fraction),
            "w_gain": f32(c.max_angular * 0.5),
        }
        n = helper.make_node
        nodes = [
            n("Gather", ["obs", "front_idx"], ["front"], axis=1),
            n("ReduceMin", ["front"], ["front_min"], axes=[1], keepdims=1),
            n("Mul", ["front_min", "span"], ["front_scaled"]),
            n("Add", ["front_scaled", "range_min"], ["front_m"]),
            n("Sub", ["front_m", "stop"], ["margin"]),
            n("Div", ["margin", "band"], ["margin_ratio"]),
            n("Clip", ["margin_ratio", "zero", "one"], ["clearance"]),
            n("Gather", ["obs", "dist_idx"], ["goal_dist"], axis=1),
            n("Mul", ["goal_dist", "goal_scale"], ["goal_ratio"]),
            n("Clip", ["goal_ratio", "zero", "one"], ["approach"]),
            n("Gather", ["obs", "cos_idx"], ["cos_b"], axis=1),
            n("Clip", ["cos_b", "zero", "one"], ["ahead"]),
            n("Gather", ["obs", "sin_idx"], ["sin_b"], axis=1),
            n("Clip", ["sin_b", "minus_one", "one"], ["turn"]),
            n("Mul", ["clearance", "ahead"], ["v0"]),
            n("Mul", ["v0", "approach"], ["v1"]),
            n("Mul", ["v1", "v_gain"], ["v"]),
            n("Mul", ["turn", "w_gain"], ["w"]),
            n("Concat", ["v", "w"], ["cmd_vel"], axis=1),
        ]
        return self.save(
            name, nodes, weights, c, agent_id=agent_id, policy_name="reference-fixture-controller"
        )

    def constant(self, name: str, v: float, w: float, *, contract: Contract | None = None) -> Path:
        """cmd_vel = (v, w) whatever the observation (v may be NaN or out of limits)."""
        from onnx import helper

        c = contract or Contract()
        weights = {
            "zeros": np.zeros((c.obs_dim, 2), np.float32),
            "offset": np.array([v, w], np.float32),
        }
        nodes = [
            helper.make_node("MatMul", ["obs", "zeros"], ["z"]),
            helper.make_node("Add", ["z", "offset"], ["cmd_vel"]),
        ]
        return self.save(name, nodes, weights, c)

    # -- broken on purpose ---------------------------------------------------- #

    def global_state(self, name: str = "critic_like.onnx", *, with_obs: bool = False) -> Path:
        """A graph that needs the global state (input 'state'), alone or next to 'obs'."""
        from onnx import helper

        c = Contract()
        state_dim = 4 * c.obs_dim
        if not with_obs:
            return self.mlp(name, contract=c, input_name="state", input_width=state_dim)
        weights = {
            "w_obs": np.zeros((c.obs_dim, 2), np.float32),
            "w_state": np.zeros((state_dim, 2), np.float32),
        }
        nodes = [
            helper.make_node("MatMul", ["obs", "w_obs"], ["a"]),
            helper.make_node("MatMul", ["state", "w_state"], ["b"]),
            helper.make_node("Add", ["a", "b"], ["cmd_vel"]),
        ]
        return self.save(name, nodes, weights, c, inputs={"obs": c.obs_dim, "state": state_dim})

    def tampered(self, name: str = "tampered.onnx") -> Path:
        """A good MLP whose weights were edited after export (metadata hash now wrong)."""
        import onnx
        from onnx import numpy_helper

        path = self.mlp(name)
        model = onnx.load(str(path))
        init = model.graph.initializer[0]
        values = numpy_helper.to_array(init).copy()
        values.flat[0] += 0.25
        init.CopyFrom(numpy_helper.from_array(values, name=init.name))
        onnx.save(model, str(path))
        return path

    def overflowing(
        self, name: str = "overflowing.onnx", *, contract: Contract | None = None
    ) -> Path:
        """Passes the warm-up (it commands (0, 0) while the robot stands still), but
        once the robot moves its output overflows: v = v_feature * 1e39 (float32:
        +-inf above a third of top speed, else up to 1e38) and w = NaN above a third
        of top turn rate, else w_feature * 1e30. What a diverged network could send."""
        from onnx import helper

        c = contract or Contract()
        n = helper.make_node
        weights = {
            "own_velocity": np.array([c.obs_dim - 2, c.obs_dim - 1], np.int64),
            "first": np.array([0], np.int64),
            "second": np.array([1], np.int64),
            "big": np.float32(1e38),
            "ten": np.float32(10.0),
            "huge": np.float32(1e30),
        }
        nodes = [
            n("Gather", ["obs", "own_velocity"], ["vel"], axis=1),
            n("Mul", ["vel", "big"], ["scaled"]),
            n("Mul", ["scaled", "ten"], ["overflowed"]),  # +-inf where |feature| > 0.34
            n("Sub", ["overflowed", "overflowed"], ["nan_or_zero"]),  # inf - inf = NaN
            n("Mul", ["vel", "huge"], ["large"]),
            n("Add", ["nan_or_zero", "large"], ["nan_or_large"]),
            n("Gather", ["overflowed", "first"], ["v"], axis=1),
            n("Gather", ["nan_or_large", "second"], ["w"], axis=1),
            n("Concat", ["v", "w"], ["cmd_vel"], axis=1),
        ]
        return self.save(name, nodes, weights, c)

    def corrupt(self, name: str = "corrupt.onnx") -> Path:
        """Random bytes under an .onnx name."""
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(np.random.default_rng(1).bytes(4096))
        return path
