"""Simulator fidelity: every effect of the robot profile shows in what the env returns."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import yaml

pytest.importorskip("pybullet", reason="needs pybullet: pip install -e '.[train]'")
pytest.importorskip("mappo_training", reason="needs mappo_training: pip install -e '.[train]'")

from mappo_training.sim import ArenaLayout, BatchedSwarmEnv, SimConfig, load_sim_config
from mappo_training.sim.lidar import scan_geometry
from swarm_contract import robot_io
from swarm_contract.config import ConfigError
from swarm_contract.robot_io import Contract, ContractMismatch

SPIN = np.array([0.0, 1.0], dtype=np.float32)
"""Turn in place at full rate: never blocked, so the world's w is what the wheels do."""
QUIET = {"range_noise": [0.0, 0.0], "dropout": [0.0, 0.0], "odom_drift": [0.0, 0.0]}
"""Fidelity overrides that switch the lidar noise, dropped rays and odometry drift off."""


@pytest.fixture
def robot(tmp_path):
    """Write a robot profile: the TurtleBot3 Burger's, with the given fields changed."""

    def write(**changes) -> str:
        fields = dataclasses.asdict(robot_io.load_profile())
        fields.update(name="test_robot", **changes)
        path = tmp_path / f"robot_{len(list(tmp_path.iterdir()))}.yaml"
        path.write_text(yaml.safe_dump(fields))
        return str(path)

    return write


@pytest.fixture
def make_env():
    envs = []

    def make(num_arenas: int = 1, seed: int | None = 0, **cfg) -> BatchedSwarmEnv:
        env = BatchedSwarmEnv(SimConfig(**cfg), num_arenas=num_arenas, seed=seed)
        envs.append(env)
        return env

    yield make
    for env in envs:
        env.close()


def centred(env: BatchedSwarmEnv, n: int = 1) -> list[ArenaLayout]:
    """Robots on a line through the middle of every arena, facing +x, goals 1 m ahead."""
    starts = np.array([[0.0, 0.6 * (i - (n - 1) / 2), 0.0] for i in range(n)])
    goals = starts[:, :2] + [1.0, 0.0]
    return [
        ArenaLayout(env.arena_size, starts, goals, robot_radius=0.105)
        for _ in range(env.num_arenas)
    ]


def steps(env: BatchedSwarmEnv, action, count: int) -> list[np.ndarray]:
    """Step `count` times with one action for every robot; the world's velocities after each."""
    actions = np.broadcast_to(np.asarray(action, np.float32), (env.num_arenas, env.num_robots, 2))
    out = []
    for _ in range(count):
        env.step(actions)
        out.append(env.world.velocities())
    return out


def test_ideal_preset_is_the_perfect_simulator_bit_for_bit(make_env):
    env = make_env(num_arenas=2, num_robots=3, scan_stack=2)
    obs, _ = env.reset()
    angle_min, increment = scan_geometry(env.scan_rays)
    c = env.contract
    pooler = robot_io.BeamPooler(
        env.scan_rays, angle_min, increment, c.num_beams, c.range_min, c.range_max
    )
    beams = pooler(env.world.scan(env.scan_rays))
    history = np.repeat(beams[:, :, None], 2, axis=2)
    rng = np.random.default_rng(3)
    for _ in range(25):
        actions = rng.uniform(-1, 1, (2, 3, 2)).astype(np.float32)
        driving = ~env.parked
        obs, _, _, _, _, info = env.step(actions)
        if info["episodes"]:
            break
        twists = robot_io.action_to_twist(actions, c.max_linear, c.max_angular)
        # Commands apply at once, the scan is fresh every step, odometry is the truth.
        np.testing.assert_array_equal(env.world.velocities()[..., 1], twists[..., 1] * driving)
        history = np.concatenate(
            [pooler(env.world.scan(env.scan_rays))[:, :, None], history[:, :, :1]], 2
        )
        v = env.world.velocities()
        expected = robot_io.build_observation(
            history, env.world.poses(), env.world.goals(), v[..., 0], v[..., 1], c
        )
        np.testing.assert_array_equal(obs, expected)
    assert c.scan_period == c.control_period


def test_a_new_scan_arrives_only_every_scan_period(make_env, robot):
    path = robot(scan_period=0.2)
    env = make_env(
        num_arenas=2,
        num_robots=2,
        scan_stack=3,
        profile=path,
        fidelity={"preset": "nominal", **QUIET},
    )
    assert env.contract.scan_period == 0.2
    env.reset(layouts=centred(env, 2))
    steps(env, SPIN, 4)  # turning: every scan differs from the one before
    before = env._history.copy()
    changed = []
    for _ in range(8):
        ranges = env.scan_ranges.copy()
        env.step(np.broadcast_to(SPIN, (2, 2, 2)))
        now = env._history.copy()
        fresh = (now != before).any(axis=(2, 3))
        # No scan: the ranges and the whole stack stay; a scan: the stack is pushed.
        np.testing.assert_array_equal(env.scan_ranges[~fresh], ranges[~fresh])
        np.testing.assert_array_equal(now[fresh][:, 1:], before[fresh][:, :-1])
        changed.append(fresh)
        before = now
    changed = np.array(changed)  # (steps, K, N)
    # Every robot: a scan every second step, whatever its phase.
    assert (changed.sum(axis=0) == 4).all()
    assert (changed[1:] != changed[:-1]).all()

    ideal = make_env(num_arenas=1, num_robots=1, scan_stack=3, profile=path)
    assert ideal.contract.scan_period == 0.1  # ideal: a scan every control period


def test_range_noise_has_the_profiles_statistics(make_env, robot):
    path = robot(range_noise_std=0.02, range_noise_ratio=0.01)
    ideal = make_env(num_arenas=12, num_robots=2, profile=path)
    ideal.reset(seed=1)
    layouts = [ideal.arena_layout(a) for a in range(12)]
    noisy = make_env(
        num_arenas=12,
        num_robots=2,
        profile=path,
        fidelity={"preset": "nominal", **QUIET, "range_noise": [1.0, 1.0]},
    )
    noisy.reset(layouts=layouts)
    true, seen = ideal.scan_ranges, noisy.scan_ranges
    hit = np.isfinite(true)
    assert hit.sum() > 1000
    z = (seen[hit] - true[hit]) / (0.02 + 0.01 * true[hit])
    assert abs(z.mean()) < 0.1
    assert abs(z.std() - 1.0) < 0.08
    np.testing.assert_array_equal(seen[~hit], true[~hit])  # no return stays no return


def test_dropped_rays_come_back_invalid_at_the_profiles_rate(make_env, robot):
    path = robot(dropout_rate=0.2)
    ideal = make_env(num_arenas=12, num_robots=2, profile=path)
    obs, _ = ideal.reset(seed=2)
    layouts = [ideal.arena_layout(a) for a in range(12)]
    env = make_env(
        num_arenas=12,
        num_robots=2,
        profile=path,
        fidelity={"preset": "nominal", **QUIET, "dropout": [1.0, 1.0]},
    )
    obs, _ = env.reset(layouts=layouts)
    true, seen = ideal.scan_ranges, env.scan_ranges
    hit = np.isfinite(true)
    dropped = np.isnan(seen) | (seen == 0.0) | np.isinf(seen)
    assert abs(dropped[hit].mean() - 0.2) < 0.03
    # Every REP-117 form of an invalid ray, and the robot's pooling copes with all.
    assert np.isnan(seen).any() and (seen == 0.0).any() and np.isinf(seen[hit]).any()
    np.testing.assert_array_equal(seen[hit & ~dropped], true[hit & ~dropped])
    assert np.isfinite(obs).all() and (obs[..., : env.contract.num_beams] <= 1).all()


def test_velocity_rises_and_falls_by_at_most_accel_times_dt(make_env, robot):
    path = robot(max_linear_accel=0.5, max_angular_accel=4.0, actuation_latency=0.0)
    env = make_env(
        num_robots=1, profile=path, fidelity={"preset": "nominal", **QUIET, "accel": [1.0, 1.0]}
    )
    obs, _ = env.reset(layouts=centred(env))
    rising = np.array(steps(env, [1.0, 1.0], 10))[:, 0, 0]  # (steps, 2)
    t = np.arange(1, 11)
    np.testing.assert_allclose(rising[:, 0], np.minimum(0.05 * t, 0.22), atol=1e-12)
    np.testing.assert_allclose(rising[:, 1], np.minimum(0.4 * t, 2.84), atol=1e-12)
    # Slowing down is limited too: a real base cannot stop at once.
    falling = np.array(steps(env, [0.0, 0.0], 3))[:, 0, 0]
    np.testing.assert_allclose(falling[:, 1], [2.44, 2.04, 1.64], atol=1e-12)
    np.testing.assert_allclose(falling[:, 0], [0.17, 0.12, 0.07], atol=1e-12)
    # What the observation reports is that velocity.
    obs = env.step(np.zeros((1, 1, 2), np.float32))[0]
    np.testing.assert_allclose(obs[0, 0, -2:], [0.02 / 0.22, 1.24 / 2.84], atol=1e-6)


def test_a_command_reaches_the_wheels_after_the_latency(make_env, robot):
    path = robot(actuation_latency=0.3, max_linear_accel=100.0, max_angular_accel=100.0)
    env = make_env(
        num_robots=1, profile=path, fidelity={"preset": "nominal", **QUIET, "accel": [1.0, 1.0]}
    )
    env.reset(layouts=centred(env))
    turns = [steps(env, SPIN, 1)[0][0, 0, 1]] + [v[0, 0, 1] for v in steps(env, [0, 0], 5)]
    assert turns == [0.0, 0.0, 0.0, 2.84, 0.0, 0.0]  # 0.3 s = 3 control periods later


def test_harsh_doubles_the_latency(make_env, robot):
    path = robot(actuation_latency=0.1, max_linear_accel=100.0, max_angular_accel=100.0)
    env = make_env(
        num_robots=1, profile=path, fidelity={"preset": "harsh", **QUIET, "accel": [1.0, 1.0]}
    )
    env.reset(layouts=centred(env))
    turns = [steps(env, SPIN, 1)[0][0, 0, 1]] + [v[0, 0, 1] for v in steps(env, [0, 0], 3)]
    assert turns == [0.0, 0.0, 2.84, 0.0]


def test_odometry_drifts_from_the_truth_but_the_critic_keeps_it(make_env, robot):
    path = robot(
        odom_linear_drift=0.1,
        odom_angular_drift=0.1,
        actuation_latency=0.0,
        max_linear_accel=100.0,
        max_angular_accel=100.0,
    )
    cfg = dict(num_arenas=8, num_robots=2, profile=path)
    only_drift = {**QUIET, "odom_drift": [1.0, 1.0], "accel": [1.0, 1.0]}
    env = make_env(**cfg, fidelity={"preset": "nominal", **only_drift})
    ideal = make_env(**cfg)
    for e in (env, ideal):
        e.reset(layouts=centred(e, 2))
        results = [e.step(np.full((8, 2, 2), 0.5, np.float32)) for _ in range(10)]
    obs, state = results[-1][:2]
    ideal_obs, ideal_state = ideal.step(np.full((8, 2, 2), 0.5, np.float32))[:2]
    obs, state = env.step(np.full((8, 2, 2), 0.5, np.float32))[:2]
    true_v = env.world.velocities()
    reported = obs[..., -2:] * [0.22, 2.84]
    scale = reported / true_v  # each robot's odometry scale error, fixed for the episode
    assert 0.04 < scale.std() < 0.2
    assert abs(scale.mean() - 1.0) < 0.08
    # The goal is seen from the odometry pose, which has drifted from the truth...
    goal = slice(-5, -2)
    assert np.abs(obs[..., goal] - ideal_obs[..., goal]).max() > 1e-3
    # ...while the world and the critic's state are the truth, as without drift.
    np.testing.assert_array_equal(env.world.poses(), ideal.world.poses())
    np.testing.assert_array_equal(state, ideal_state)


def test_snapshot_resumes_exactly_with_every_effect_on(make_env, robot):
    path = robot(scan_period=0.2, actuation_latency=0.2)
    cfg = dict(num_arenas=3, num_robots=3, scan_stack=3, profile=path, fidelity={"preset": "harsh"})
    env = make_env(seed=4, **cfg)
    env.reset()
    rng = np.random.default_rng(0)
    for _ in range(7):
        env.step(rng.uniform(-1, 1, (3, 3, 2)).astype(np.float32))
    snapshot = env.snapshot()
    actions = rng.uniform(-1, 1, (12, 3, 3, 2)).astype(np.float32)
    first = [env.step(a)[0] for a in actions]
    resumed = make_env(seed=99, **cfg)
    resumed.reset()
    resumed.restore(snapshot)
    second = [resumed.step(a)[0] for a in actions]
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_model_stacking_control_period_scans_is_refused_by_a_slower_lidar(robot):
    path = robot(scan_period=0.2)
    robot_side = Contract.for_profile(robot_io.load_profile(path), scan_stack=3)
    trained_ideal = load_sim_config({"profile": path, "scan_stack": 3}).contract()
    with pytest.raises(ContractMismatch, match="scan_period"):
        trained_ideal.check_fits(robot_side)
    trained_nominal = load_sim_config(
        {"profile": path, "scan_stack": 3, "fidelity": {"preset": "nominal"}}
    ).contract()
    trained_nominal.check_fits(robot_side)
    # Stacked 3 at 0.2 s on a robot whose stack is 2: scan_stack is named.
    with pytest.raises(ContractMismatch, match="scan_stack"):
        trained_nominal.check_fits(Contract.for_profile(robot_io.load_profile(path), scan_stack=2))


@pytest.mark.parametrize(
    ("fidelity", "named"),
    [
        ({"preset": "realistic"}, "sim.fidelity.preset"),
        ({"preset": "nominal", "noise": [1, 2]}, "sim.fidelity.noise"),
        ({"preset": "nominal", "dropout": [2, 1]}, "fidelity.dropout"),
        ({"preset": "nominal", "accel": [0, 1]}, "fidelity.accel"),
        ({"preset": "nominal", "latency": [1]}, "fidelity.latency"),
        ({"range_noise": [1, 1]}, "fidelity.range_noise"),
    ],
)
def test_bad_fidelity_config_names_the_key(fidelity, named):
    with pytest.raises(ConfigError, match=named.replace(".", r"\.")):
        load_sim_config({"fidelity": fidelity})


def test_the_burgers_profile_says_its_lidar_scans_at_5_hz():
    """The LDS-01 turns at 300 rpm: a stacked model trained on scans 0.1 s apart
    does not fit, and is refused naming scan_period."""
    profile = robot_io.load_profile()
    assert math.isclose(profile.scan_period, 0.2) and math.isclose(profile.control_period, 0.1)
    assert profile.mount_yaw == 0.0
    assert 0 < profile.range_noise_std < 0.02 and 0 < profile.dropout_rate < 0.1
    robot = Contract.for_profile(profile, scan_stack=3)
    assert math.isclose(robot.scan_period, 0.2)
    trained_at_10hz = Contract.for_profile(profile, scan_stack=3, scan_period=0.1)
    assert any(p.startswith("scan_period") for p in trained_at_10hz.mismatches(robot))


def test_a_snapshot_from_before_fidelity_resumes_with_fresh_draws(make_env):
    cfg = dict(num_arenas=2, num_robots=2, fidelity={"preset": "nominal"})
    env = make_env(**cfg)
    env.reset()
    snapshot = env.snapshot()
    del snapshot["fidelity"], snapshot["ranges"]  # as written before fidelity existed
    resumed = make_env(**cfg)
    resumed.restore(snapshot)
    np.testing.assert_array_equal(resumed.scan_ranges, env.world.scan(env.scan_rays))
    turns = steps(resumed, SPIN, 3)[-1][..., 1]
    assert (turns > 0).all()  # the robots drive: acceleration limits were drawn
