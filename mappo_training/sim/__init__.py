"""The PyBullet swarm simulator: differential-drive robots with lidar in square arenas.

Layers, bottom up (each module has one job):

    geometry.py    obstacles (cylinders, boxes) and batched 2-D contact tests in numpy
    rooms.py       named room layouts from YAML (layouts/: corridor, two_rooms,
                   crossing, warehouse): walls, furniture, start and goal zones
    scenarios.py   ArenaLayout and the scenarios that draw one: random, circle, swap,
                   layout; required_arena_size grows the arena until the robots fit;
                   arena_size_range fences each episode into a square of drawn size
    bodies.py      the PyBullet bodies (robots, walls, obstacles) as triangle meshes,
                   which ray-cast ~3x faster than convex primitives
    lidar.py       LaserScan-convention scans: rays built in numpy, one rayTestBatch
    world.py       World: one headless PyBullet client holding K arenas x N robots,
                   walls and obstacles; twists in SI units in, poses, body-frame
                   velocities, goals and full scans out. The ROS 2 sim bridge
                   drives this layer directly.
    config.py      SimConfig and RewardConfig (typed, validated, from YAML)
    reward.py      the shared team reward
    episodes.py    EpisodeTracker: what K arenas' episodes have done, when they end and
                   how they score (training env and ROS 2 sim bridge alike);
                   summarize: the rates and means of finished episodes
    env.py         BatchedSwarmEnv: the MAPPO task on top of World (observations via
                   robot_io, critic state, rewards, auto-reset, episode scores)
    parallel_env.py  SwarmParallelEnv: one arena as a PettingZoo ParallelEnv
    recording.py   EpisodeRecorder: one arena's episode as data for pictures
    render.py      top-down PNG and animated GIF of a recorded episode

BatchedSwarmEnv.step returns (obs, state, reward, terminated, truncated, info):

    obs          (K, N, obs_dim) float32   each robot's local observation (robot_io layout)
    state        (K, N, state_dim) float32 critic input; "global" mode: every robot's
                 x, y, cos yaw, sin yaw, v, w, goal x, goal y, arrived (positions in
                 the arena frame divided by the arena side), identical rows per arena;
                 "agent_specific": own obs + global state + one-hot robot index
    reward       (K, N) float32            each robot's reward: reward.team_share of the team mean
                                           plus the rest of its own terms (1 = pure team reward)
    terminated   (K,) bool                 all robots arrived (or a collision, if
                                           end_on_collision)
    truncated    (K,) bool                 max_steps reached without termination
    info["active"]            (K, N) robot was driving in this step (death mask)
    info["arrived"]           (K, N) reached its goal in this step (then parks)
    info["collided"]          (K, N) touched a robot, wall or obstacle in this step
    info["robot_collided"], info["static_collided"]   the same, split by what was hit
    info["final_obs"], info["final_state"], info["final_poses"]
                              last obs/state/poses of arenas that ended (valid where
                              terminated | truncated); obs/state returned are the new
                              episode's, as ended arenas reset inside step()
    info["episodes"]          one dict per ended arena: arena, success (all arrived,
                              no collision), collisions (robot-steps in contact),
                              robot_collisions, static_collisions, arrived_fraction,
                              length (steps), return, time_to_goal (mean seconds over
                              arrived robots), path_efficiency ((start distance -
                              goal_tolerance) / distance driven, mean over arrived
                              robots); NaN when no robot arrived; reverse_share
                              (share of the team's distance driven backwards)

Importing this package is cheap: PyBullet and PettingZoo load only when a
World or a SwarmParallelEnv is built.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from mappo_training.sim.config import RewardConfig, SimConfig, load_sim_config
from mappo_training.sim.episodes import EpisodeRules, EpisodeTracker, summarize
from mappo_training.sim.geometry import Obstacle
from mappo_training.sim.scenarios import ArenaLayout

if TYPE_CHECKING:
    from mappo_training.sim.env import BatchedSwarmEnv
    from mappo_training.sim.parallel_env import SwarmParallelEnv
    from mappo_training.sim.recording import EpisodeRecorder
    from mappo_training.sim.world import World

_LAZY = {
    "BatchedSwarmEnv": "mappo_training.sim.env",
    "World": "mappo_training.sim.world",
    "SwarmParallelEnv": "mappo_training.sim.parallel_env",
    "EpisodeRecorder": "mappo_training.sim.recording",
}

__all__ = [
    "ArenaLayout",
    "BatchedSwarmEnv",
    "EpisodeRecorder",
    "EpisodeRules",
    "EpisodeTracker",
    "Obstacle",
    "RewardConfig",
    "SimConfig",
    "SwarmParallelEnv",
    "World",
    "load_sim_config",
    "summarize",
]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
