"""The robot's safety layer on simulated robots.

`SimSafety` runs one `swarm_contract.safety_layer.SafetyLayer` per robot of
every arena, with the limits of the env's robot profile, between the policy
and the simulator, as the policy node runs it between the ONNX policy and
cmd_vel, and it holds a robot whose odometry puts it at its goal, as the
node's gate does. `swarm eval` and `swarm bench deploy` drive through it;
`BatchedSwarmEnv` does too when `sim.safety_layer` is set, so that a policy
trains with the stop zone, ramp and hold it will meet on the robot.
"""

from __future__ import annotations

import numpy as np

from mappo_training.sim.lidar import scan_geometry


class SimSafety:
    """Every simulated robot's safety layer, as the policy node runs it.

    One `SafetyLayer` per robot of every arena, with the limits of the
    env's robot profile. `apply` filters a step's actions with the scan each
    robot's current observation was built from (the simulator's lidar, at the
    simulator's ray count and angles); `end_episode` returns an arena's
    stop-zone cuts per robot and starts its robots from rest again.

        safety = SimSafety(env)
        obs, _, _, _, _, info = env.step(safety.apply(policy.act(obs)))
        for ep in info["episodes"]:
            cuts = safety.end_episode(ep["arena"])
    """

    def __init__(self, env, goal_tolerance: float | None = None, **overrides) -> None:
        from swarm_contract.safety_layer import DEFAULT_GOAL_HOLD, SafetyLayer, SafetyLimits

        self.env = env
        self.goal_tolerance = DEFAULT_GOAL_HOLD if goal_tolerance is None else goal_tolerance
        """The node's at-goal hold (policy_node goal_tolerance): a robot whose
        odometry puts it this close to its goal stops for good."""
        limits = SafetyLimits.from_profile(env.profile, **overrides)
        self.limits = limits
        k, n = env.num_arenas, env.num_robots
        self.layers = [[SafetyLayer(limits) for _ in range(n)] for _ in range(k)]
        self.angle_min, self.angle_increment = scan_geometry(env.scan_rays)
        self.cuts = np.zeros((k, n), dtype=int)
        """Stop-zone cuts per robot in each arena's current episode."""
        self.driving_steps = np.zeros((k, n), dtype=int)
        """Steps each robot drove (was not parked) in each arena's current episode."""

    def apply(self, actions: np.ndarray) -> np.ndarray:
        """(K, N, 2) actions in [-1, 1] -> the same after every robot's safety layer."""
        from swarm_contract.robot_io import action_to_twist

        env, c = self.env, self.env.contract
        ranges = env.scan_ranges
        twists = action_to_twist(actions, c.max_linear, c.max_angular)
        # Parked at the goal, or a slot the episode's (smaller) team leaves empty.
        parked = env.parked | ~env.episodes.present
        # The node holds a robot whose odometry says it is at its goal. With
        # odometry drift that may be short of the goal: the simulator (which
        # parks on the true pose) would otherwise let the policy drive on, as no
        # robot does, and score better than ROS (bench deploy: 100% against 17%).
        held = env.believed_goal_distance <= self.goal_tolerance
        period = env.profile.control_period
        safe = np.zeros_like(twists)
        for a, row in enumerate(self.layers):
            for r, layer in enumerate(row):
                if parked[a, r]:
                    layer.reset()  # the simulator holds a parked robot at zero
                    continue
                if held[a, r]:
                    layer.reset()  # the node sends zero and ramps up from rest
                    self.driving_steps[a, r] += 1
                    continue
                cmd = layer.filter(
                    twists[a, r, 0],
                    twists[a, r, 1],
                    period,
                    ranges[a, r],
                    self.angle_min,
                    self.angle_increment,
                )
                safe[a, r] = (cmd.linear, cmd.angular)
                self.cuts[a, r] += cmd.stop_zone_cut
                self.driving_steps[a, r] += 1
        return np.stack(
            [safe[..., 0] / c.max_linear, safe[..., 1] / c.max_angular], axis=-1
        ).astype(np.float32)

    def end_episode(self, arena: int) -> dict:
        """Arena `arena`'s episode ended: its stop-zone numbers, and a fresh start."""
        numbers = {
            "stop_zone_cuts": self.cuts[arena].tolist(),
            "driving_steps": self.driving_steps[arena].tolist(),
        }
        self.cuts[arena] = 0
        self.driving_steps[arena] = 0
        for layer in self.layers[arena]:
            layer.reset()
        return numbers
