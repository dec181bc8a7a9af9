"""swarm_ops as colcon installed it: the lockstep rules the sim bridge steps
by, and `swarm deploy`'s restart limit, which the launch files share.

Run by `colcon test` (the repository's own suite lives in tests/)."""

import numpy as np

from swarm_controller.fleet import RESPAWN_MAX_RETRIES
from swarm_ops import deploy
from swarm_ops.lockstep import Action, Lockstep


def lockstep(robots: int = 2) -> Lockstep:
    return Lockstep(robots, timeout=0.5, start_timeout=10.0, min_interval=0.0, settle_ticks=1)


def test_deploy_gives_up_on_a_crashing_node_after_the_launch_files_retries():
    assert deploy.MAX_RESTARTS == RESPAWN_MAX_RETRIES


def test_an_episode_settles_before_its_first_step_and_zeros_do_not_count_as_ready():
    step = lockstep()
    active = np.ones(2, dtype=bool)
    step.begin_episode(0.0)
    assert step.next_action(0.0, active).action is Action.HOLD  # no clock tick yet
    step.tick(0.0, 1.0, hold=True)
    step.answer(0, moving=False)
    step.answer(1, moving=False)
    assert step.next_action(0.1, active).action is Action.HOLD  # nobody would move yet
    step.tick(0.1, 1.1, hold=True)
    step.answer(0, moving=True)
    step.answer(1, moving=True)
    assert step.next_action(0.2, active).action is Action.SETTLE
    step.tick(0.2, 1.2, hold=True)
    step.answer(0)
    step.answer(1)
    assert step.next_action(0.3, active).action is Action.GO
    assert step.settling is False


def run_to_go(step: Lockstep, active: np.ndarray) -> float:
    now = 0.0
    step.begin_episode(now)
    for _ in range(10):
        decision = step.next_action(now, active)
        if decision.action is Action.GO:
            return now
        step.tick(now, now, hold=True)
        for robot in range(len(active)):
            step.answer(robot, moving=True)
        now += 0.1
    raise AssertionError("the episode never started")


def test_a_step_waits_for_every_driving_robot_and_counts_a_silent_one_as_late():
    step = lockstep()
    active = np.ones(2, dtype=bool)
    now = run_to_go(step, active)
    step.tick(now, now + 10.0)
    step.answer(0)
    assert step.next_action(now + 0.1, active).action is Action.WAIT
    decision = step.next_action(now + 0.6, active)
    assert decision.action is Action.STEP and decision.late == (1,)
    assert step.misses.tolist() == [0, 1]


def test_a_stamped_command_for_an_older_tick_does_not_answer_the_new_one():
    step = lockstep(1)
    active = np.ones(1, dtype=bool)
    now = run_to_go(step, active)
    step.tick(now, 20.0)
    step.answer(0, stamp=19.9)
    assert step.next_action(now + 0.1, active).action is Action.WAIT
    step.answer(0, stamp=20.0)
    assert step.next_action(now + 0.1, active).action is Action.STEP
