"""Which robot a policy must fit, and the check, without ROS.

A model is refused unless its contract fits the robot's (robot_io.Contract.
mismatches names each field that does not). The robot's side comes from:

1. the `robot_contract` YAML file, when one is given: every field as written;
2. else the robot profile: the `robot_profile` parameter (a shipped profile's
   name or a profile YAML), or else the shipped profile the model's contract
   names (turtlebot3_burger for every shipped model). What the robot is comes
   from the profile: range_min, range_max, max_linear, max_angular,
   control_period and scan_period. What a model chooses about its own
   observation comes from the model: num_beams, scan_stack and goal_clip, of
   the first model at configure; every swap must match those, since the node
   keeps one observation builder. So a model whose scan stack was trained at
   10 Hz is refused on a TurtleBot3, whose LDS-01 sends a scan every 0.2 s,
   with `scan_period` named;
3. else (a custom robot: no robot_profile, and no profile shipped under the
   name the model gives) the model's own contract, as before profiles existed.

The same profile places the lidar: its mount_yaw turns scan angles into
robot-frame angles for the observation and for the stop zone.
"""

from __future__ import annotations

from pathlib import Path

from swarm_contract.onnx_policy import OnnxPolicy, PolicyRejected
from swarm_contract.robot_io import (
    PROFILES_DIR,
    Contract,
    ContractMismatch,
    RobotProfile,
    load_profile,
)

MODEL_FIELDS = ("num_beams", "scan_stack", "goal_clip")
"""Contract fields the model chooses; the profile owns the others it sets."""


def shipped_profile(name: str) -> RobotProfile | None:
    """The profile shipped with swarm_contract under this name, or None."""
    if (PROFILES_DIR / f"{name}.yaml").is_file():
        return load_profile(name)
    return None


def node_profile(robot_profile: str, contract: Contract) -> RobotProfile | None:
    """The robot's profile: the `robot_profile` parameter when set (a shipped
    profile's name or a YAML path), else the shipped profile `contract` names;
    None for a custom robot. Raises ValueError naming robot_profile when the
    parameter's profile cannot be loaded."""
    if robot_profile:
        try:
            return load_profile(robot_profile)
        except Exception as err:  # missing file, bad YAML, unknown or bad keys
            raise ValueError(f"robot_profile={robot_profile!r}: {err}") from None
    return shipped_profile(contract.profile)


def profile_contract(profile: RobotProfile, model: Contract) -> Contract:
    """The robot's contract from its profile, with the model's own choices (MODEL_FIELDS)."""
    return Contract.for_profile(profile, **{name: getattr(model, name) for name in MODEL_FIELDS})


def robot_contract_for(robot_profile: str, model: Contract) -> Contract:
    """The robot's side of the check when no robot_contract file is given (cases 2
    and 3 of the module docstring)."""
    profile = node_profile(robot_profile, model)
    return model if profile is None else profile_contract(profile, model)


def check_fits_robot(model: Contract, robot: Contract, path: str | Path, where: str) -> None:
    """Raise PolicyRejected, worded as OnnxPolicy.load words it, when the model's
    contract does not fit the robot's; `where` says where the robot's came from."""
    try:
        model.check_fits(robot)
    except ContractMismatch as err:
        raise PolicyRejected(f"policy {path} refused: {err} ({where})") from None


def load_fitting_policy(
    path: str | Path,
    robot: Contract | None,
    robot_profile: str,
    **load_options,
) -> OnnxPolicy:
    """OnnxPolicy.load, checked against `robot` (the robot_contract file's, or the
    one configure settled on); with none yet, against the robot profile (case 2).

    load_options: OnnxPolicy.load's allowed_dirs, max_bytes, expected_sha256.
    """
    policy = OnnxPolicy.load(path, robot, **load_options)
    if robot is None:
        try:
            fit = robot_contract_for(robot_profile, policy.contract)
        except ValueError as err:
            raise PolicyRejected(f"parameter {err}") from None
        if fit is not policy.contract:
            check_fits_robot(
                policy.contract, fit, path, f"the robot's side from robot profile {fit.profile!r}"
            )
    return policy
