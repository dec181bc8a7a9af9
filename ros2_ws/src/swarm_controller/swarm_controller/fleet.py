"""Which ROS 2 nodes a deployment starts: a fleet description in, node specs out.

This is the one place that decides namespaces, parameters and remappings. The
launch files in `launch/` (on a machine with a ROS 2 distro) and `swarm deploy`
(pip-only, one process per node) both call it, so the two roads start exactly
the same nodes, and tests check the decision without ROS.

Two inputs:

- a simulated swarm (`sim_node_specs`): the sim bridge plus one policy node per
  simulated robot, in the namespaces the bridge publishes (`robot_<i>`);
- a fleet YAML (`load_fleet` + `fleet_node_specs`): one entry per real robot
  with its namespace, policy, topic remappings and parameters:

      policy: models/default          # default for every robot (folder or .onnx)
      parameters: {sensor_timeout: 0.5}
      robots:
        - namespace: tb3_0
          remappings: {cmd_vel: /tb3_0/cmd_vel_nav}
          parameters: {cmd_vel_stamped: true}
        - namespace: tb3_1
          policy: models/default_b/robot_0.onnx

A policy folder gives robot k of the fleet `robot_<k mod n>.onnx` (n files in
the folder), the same rule `swarm eval` uses when a shared actor drives more
robots than it was trained with. Relative paths in a fleet file are relative to
that file. Nothing here imports rclpy or launch; `launch_actions` imports
launch_ros when a launch file calls it.
"""

from __future__ import annotations

import json
import math
import re
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from swarm_contract.config import ConfigError, from_dict, load_yaml
from swarm_contract.robot_io import RobotProfile

PACKAGE = "swarm_controller"
SIM_PACKAGE = "swarm_ops"
"""The sim bridge stands in for a fleet, so it ships with the operations tools."""
POLICY_NODE = "policy_node"
SIM_BRIDGE = "sim_bridge"
ROBOT_PREFIX = "robot_"
"""Namespace prefix of simulated robots: the bridge serves robot_0, robot_1, ..."""

POLICY_TOPICS = ("scan", "odom", "goal", "cmd_vel")
"""The policy node's own topic names, relative to its namespace; remappings
replace these and nothing else."""

SCENARIOS = ("random", "circle", "swap")
"""Scenarios a launch argument or `swarm deploy --sim` names by themselves."""
SIM_SCENARIOS = (*SCENARIOS, "layout")
"""What sim_node_specs takes: also `layout`, a named room layout whose name comes
in the bridge's sim_config or sim_overrides (layout=two_rooms), as `swarm demo` does."""
RESPAWN_DELAY = 1.0
"""Seconds between a policy node's crash and its restart."""
RESPAWN_MAX_RETRIES = 5
"""Restarts of a crashed node before it is left down. The launch files pass it
as launch_ros's `respawn_max_retries` and `swarm deploy` stops restarting after
as many, so a node that crashes at start-up (a broken policy file) is not
restarted forever on either road."""

LIFECYCLE_SELF = "autostart"
"""The policy node configures and activates itself (autostart: true)."""
LIFECYCLE_LAUNCH = "launch"
"""autostart: false, and the launch file takes the node to active itself."""
LIFECYCLE_MANAGER = "manager"
"""autostart: false, and the user's lifecycle manager drives the transitions."""

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ROBOT_FILE = re.compile(r"^robot_(\d+)\.onnx$")


@dataclass(frozen=True)
class NodeSpec:
    """One node to start: what it runs, where (namespace), with which settings.

    `parameters` hold plain values (str, bool, int, float, list of str); floats
    stay floats so a `1.0` is never passed to ROS as the integer 1.
    """

    executable: str
    name: str
    namespace: str = ""
    """Absolute namespace (`/robot_0`), or "" for the root."""
    parameters: dict[str, Any] = field(default_factory=dict)
    remappings: tuple[tuple[str, str], ...] = ()
    respawn: bool = False
    respawn_delay: float = RESPAWN_DELAY
    respawn_max_retries: int = RESPAWN_MAX_RETRIES
    package: str = PACKAGE
    parameter_files: tuple[str, ...] = ()
    """YAML parameter files (`ros__parameters` per node name), read before
    `parameters`, which override them."""

    @property
    def label(self) -> str:
        """A short unique name for logs and messages: `robot_0.policy_node`."""
        ns = self.namespace.strip("/").replace("/", ".")
        return f"{ns}.{self.name}" if ns else self.name

    def topic(self, name: str) -> str:
        """Where the node's own topic `name` ends up (after namespace and remapping)."""
        for source, target in self.remappings:
            if source == name:
                name = target
                break
        if name.startswith("/"):
            return name
        return f"{self.namespace.rstrip('/')}/{name}" if self.namespace else f"/{name}"

    def ros_arguments(self) -> list[str]:
        """The node's `--ros-args ...` tail, as a shell-free argument list."""
        args = ["--ros-args", "-r", f"__node:={self.name}"]
        if self.namespace:
            args += ["-r", f"__ns:={self.namespace}"]
        for source, target in self.remappings:
            args += ["-r", f"{source}:={target}"]
        # rcl applies files and -p in the order given: files first, so -p wins.
        for path in self.parameter_files:
            args += ["--params-file", str(path)]
        for key, value in self.parameters.items():
            args += ["-p", f"{key}:={ros_value(value)}"]
        return args

    def command(self, python: str = sys.executable) -> list[str]:
        """The command line that starts this node without a ROS distro."""
        return [python, "-m", f"{self.package}.{self.executable}", *self.ros_arguments()]


def ros_value(value: Any) -> str:
    """A parameter value as `-p name:=<value>` wants it (ROS parses it as YAML).

    Strings are always quoted so that "true", "1.0" or "" stay strings.
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ConfigError(f"parameter value {value!r} is not finite")
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(ros_value(v) for v in value) + "]"
    raise ConfigError(
        f"parameter value {value!r} ({type(value).__name__}) is not a string, bool,"
        " number or list of those"
    )


# --------------------------------------------------------------------------- #
# Policies: a folder or a file -> one robot_<i>.onnx per robot.
# --------------------------------------------------------------------------- #


def policy_files(policy: str | Path) -> list[Path]:
    """The robot_<i>.onnx files of a models/<name> folder, in robot order."""
    folder = Path(policy)
    if not folder.is_dir():
        raise ConfigError(
            f"policy {str(policy)!r} is not a folder; give a models/<name> folder"
            " from `swarm export` or one robot_<i>.onnx file"
        )
    found = sorted(
        (int(m.group(1)), p) for p in folder.iterdir() if (m := _ROBOT_FILE.match(p.name))
    )
    if not found:
        raise ConfigError(
            f"policy folder {str(folder)!r} holds no robot_<i>.onnx files;"
            " export one with `swarm export <run> --out <folder>`"
        )
    return [p for _, p in found]


def find_policy(policy: str | Path) -> Path:
    """A policy given on a command line or launch argument; a relative path is
    relative to the current folder, as for any path typed in a shell."""
    path = Path(policy).expanduser()
    if path.exists():
        return path
    where = "" if path.is_absolute() else f" in {Path.cwd()}"
    raise ConfigError(
        f"policy {str(policy)!r} not found{where}; give a models/<name> folder from"
        " `swarm export` or a robot_<i>.onnx file, as an absolute path or relative to the"
        " current folder (e.g. run from the repository root for models/default)"
    )


def policy_for_robot(policy: str | Path, index: int) -> Path:
    """Absolute ONNX file that robot `index` runs: the file itself, or the
    folder's robot_<index mod n>.onnx."""
    path = Path(policy).expanduser()
    if path.suffix == ".onnx":
        if not path.is_file():
            raise ConfigError(f"policy file {str(policy)!r} does not exist")
        return path.resolve()
    files = policy_files(path)
    return files[index % len(files)].resolve()


# --------------------------------------------------------------------------- #
# A simulated swarm: sim bridge + one policy node per robot.
# --------------------------------------------------------------------------- #


def sim_node_specs(
    *,
    num_robots: int,
    policy: str | Path,
    scenario: str = "random",
    seed: int = 0,
    use_sim_time: bool = True,
    bridge_parameters: dict[str, Any] | None = None,
    policy_parameters: dict[str, Any] | None = None,
    respawn: bool = True,
) -> list[NodeSpec]:
    """The sim bridge (root namespace) and policy nodes in /robot_0 ... /robot_<n-1>.

    With `use_sim_time` the bridge publishes /clock and every node follows it,
    so policy nodes keep up when the bridge runs faster than real time.
    `bridge_parameters` / `policy_parameters` add to or override what is set
    here (e.g. episodes, real_time_factor; sensor_timeout).
    """
    if isinstance(num_robots, bool) or not isinstance(num_robots, int) or num_robots < 1:
        raise ConfigError(f"num_robots={num_robots!r}: must be an integer >= 1")
    if scenario not in SIM_SCENARIOS:
        raise ConfigError(f"scenario={scenario!r}: must be one of {list(SIM_SCENARIOS)}")
    bridge = {
        "num_robots": num_robots,
        "scenario": scenario,
        "seed": int(seed),
        "namespace_prefix": ROBOT_PREFIX,
        "publish_clock": bool(use_sim_time),
        **(bridge_parameters or {}),
    }
    specs = [NodeSpec(SIM_BRIDGE, SIM_BRIDGE, "", bridge, package=SIM_PACKAGE)]
    stamped = bool(bridge.get("cmd_vel_stamped", False))
    policy = find_policy(policy)
    for i in range(num_robots):
        path = policy_for_robot(policy, i)
        params = {
            "policy_path": str(path),
            "allowed_policy_dirs": [str(path.parent.parent)],
            "use_sim_time": bool(use_sim_time),
            "cmd_vel_stamped": stamped,
            **(policy_parameters or {}),
        }
        specs.append(
            NodeSpec(POLICY_NODE, POLICY_NODE, f"/{ROBOT_PREFIX}{i}", params, respawn=respawn)
        )
    return specs


# --------------------------------------------------------------------------- #
# A real fleet from YAML.
# --------------------------------------------------------------------------- #


@dataclass
class RobotEntry:
    """One robot of a fleet file."""

    namespace: str
    """The robot's ROS namespace, e.g. tb3_0 (its topics are <namespace>/scan, ...)."""
    policy: str = ""
    """models/<name> folder or one .onnx file; empty: the fleet's `policy`."""
    agent: int | None = None
    """Which robot_<i>.onnx of a policy folder to run; None: this entry's position."""
    remappings: dict[str, str] = field(default_factory=dict)
    """The node's topic (scan, odom, goal, cmd_vel) -> this robot's topic name."""
    parameters: dict[str, Any] = field(default_factory=dict)
    """Policy-node parameters for this robot (override the fleet's)."""


@dataclass
class FleetConfig:
    """A fleet file: shared defaults and one entry per robot."""

    robots: list[RobotEntry] = field(default_factory=list)
    policy: str = ""
    """Default policy of every robot (folder or .onnx)."""
    parameters: dict[str, Any] = field(default_factory=dict)
    """Policy-node parameters for every robot."""
    use_sim_time: bool = False
    respawn: bool = True
    """Restart a policy node that crashed."""
    respawn_delay: float = RESPAWN_DELAY
    base_dir: str = ""
    """Folder relative paths are resolved against (set by load_fleet: the file's)."""


def load_fleet(path: str | Path) -> FleetConfig:
    """Read and check a fleet YAML file; relative paths in it are relative to it."""
    path = Path(path)
    data = load_yaml(path)
    fleet = from_dict(FleetConfig, data, where=str(path))
    if not fleet.base_dir:
        fleet.base_dir = str(path.resolve().parent)
    return fleet


def fleet_node_specs(
    fleet: FleetConfig, known_parameters: set[str] | None = None
) -> list[NodeSpec]:
    """One policy node per fleet entry, in the entry's namespace.

    `known_parameters`: the policy node's parameter names; when given, a
    parameter not in it is an error (a typo would otherwise be ignored by ROS).
    """
    if not fleet.robots:
        raise ConfigError("fleet: `robots` is empty; add one entry per robot (namespace: ...)")
    base = Path(fleet.base_dir or ".")
    seen: dict[str, int] = {}
    specs = []
    for index, robot in enumerate(fleet.robots):
        where = f"robots[{index}]"
        namespace = check_namespace(robot.namespace, where)
        if namespace in seen:
            raise ConfigError(
                f"{where}.namespace {robot.namespace!r} is already used by robots[{seen[namespace]}];"
                " every robot needs its own namespace"
            )
        seen[namespace] = index
        policy = robot.policy or fleet.policy
        if not policy:
            raise ConfigError(
                f"{where}: no policy; set `policy:` on the robot or at the top of the fleet file"
            )
        agent = index if robot.agent is None else robot.agent
        if agent < 0:
            raise ConfigError(f"{where}.agent={agent}: must be >= 0")
        remappings = check_remappings(robot.remappings, where)
        try:
            # pathlib: an absolute policy path replaces `base`.
            path = policy_for_robot(base / Path(policy).expanduser(), agent)
        except ConfigError as err:
            raise ConfigError(f"{where} ({robot.namespace}): {err}") from None
        params = {
            "policy_path": str(path),
            "allowed_policy_dirs": [str(path.parent.parent)],
            "use_sim_time": fleet.use_sim_time,
            # Explicit, so whoever else speaks on cmd_vel (swarm deploy's command
            # guard) uses the node's message type.
            "cmd_vel_stamped": RobotProfile().cmd_vel_stamped,
            **fleet.parameters,
            **robot.parameters,
        }
        if known_parameters is not None:
            unknown = sorted(set(params) - set(known_parameters))
            if unknown:
                raise ConfigError(
                    f"{where}: unknown policy-node parameter(s) {unknown};"
                    f" valid: {sorted(known_parameters)}"
                )
        specs.append(
            NodeSpec(
                POLICY_NODE,
                POLICY_NODE,
                namespace,
                params,
                remappings=remappings,
                respawn=fleet.respawn,
                respawn_delay=fleet.respawn_delay,
            )
        )
    return specs


def robot_node_spec(
    *,
    namespace: str,
    policy: str | Path,
    agent: int = 0,
    scan_topic: str = "scan",
    odom_topic: str = "odom",
    goal_topic: str = "goal",
    cmd_vel_topic: str = "cmd_vel",
    cmd_vel_stamped: bool = True,
    use_sim_time: bool = False,
    parameters: dict[str, Any] | None = None,
) -> NodeSpec:
    """The policy node of one real robot (what robot.launch.py starts).

    Topic arguments name the robot's own topics, relative to its namespace or
    absolute: a TurtleBot3 in namespace tb3_0 publishing /tb3_0/scan needs
    none, and gets TwistStamped as a TurtleBot3 on Jazzy wants; a base that
    takes Twist on /base/cmd_vel_in gets cmd_vel_topic=/base/cmd_vel_in,
    cmd_vel_stamped=False.
    """
    remaps = {"scan": scan_topic, "odom": odom_topic, "goal": goal_topic, "cmd_vel": cmd_vel_topic}
    fleet = FleetConfig(
        robots=[
            RobotEntry(
                namespace=namespace,
                policy=str(find_policy(policy).resolve()),
                agent=agent,
                remappings={k: v for k, v in remaps.items() if v and v != k},
                parameters={"cmd_vel_stamped": bool(cmd_vel_stamped), **(parameters or {})},
            )
        ],
        use_sim_time=use_sim_time,
        base_dir=str(Path.cwd()),
    )
    return fleet_node_specs(fleet)[0]


def check_namespace(namespace: str, where: str = "namespace") -> str:
    """`tb3_0` or `/fleet/tb3_0` -> `/tb3_0`, `/fleet/tb3_0`; anything else is an error."""
    parts = [p for p in str(namespace).strip().split("/") if p]
    if not parts or not all(_NAME.match(p) for p in parts):
        raise ConfigError(
            f"{where}.namespace {namespace!r} is not a ROS namespace: use names of letters,"
            " digits and _ that do not start with a digit, separated by / (e.g. tb3_0)"
        )
    return "/" + "/".join(parts)


def check_remappings(remappings: dict[str, str], where: str = "") -> tuple[tuple[str, str], ...]:
    """Validated (node topic, robot topic) pairs; keys must be the node's topics."""
    pairs = []
    for source, target in remappings.items():
        if source not in POLICY_TOPICS:
            raise ConfigError(
                f"{where}.remappings: {source!r} is not a topic of the policy node;"
                f" valid: {list(POLICY_TOPICS)}"
            )
        topic = str(target).strip()
        names = [p for p in topic.split("/") if p]
        if not names or not all(_NAME.match(p) for p in names):
            raise ConfigError(
                f"{where}.remappings.{source}: {target!r} is not a topic name"
                " (e.g. scan, /tb3_0/scan)"
            )
        if topic != source:
            pairs.append((source, topic))
    return tuple(pairs)


def parse_flag(text: str, name: str) -> bool:
    """A launch argument's true/false text as a bool; anything else is an error."""
    value = str(text).strip().lower()
    if value in ("true", "1", "yes", "on"):
        return True
    if value in ("false", "0", "no", "off"):
        return False
    raise ConfigError(f"launch argument {name}:={text!r} must be true or false")


def parse_count(text: str, name: str) -> int:
    """A launch argument's text as a non-negative integer."""
    try:
        value = int(str(text).strip())
    except ValueError:
        value = -1
    if value < 0:
        raise ConfigError(f"launch argument {name}:={text!r} must be a whole number >= 0")
    return value


# --------------------------------------------------------------------------- #
# Launch actions (only on a machine with a ROS 2 distro).
# --------------------------------------------------------------------------- #


def parse_optional_flag(text: str, name: str) -> bool | None:
    """A launch argument that may be left empty ("": not set, let the params
    file or the node's default decide) or be true/false."""
    return None if str(text).strip() == "" else parse_flag(text, name)


PARAMS_FILE = "config/policy_node.yaml"
"""The policy node's sample parameters, relative to the package's share folder."""


def installed_params_file() -> str:
    """The installed config/policy_node.yaml (the launch files' default
    `params_file`); in a source checkout without an install, the package's own
    copy; "" when neither exists (the node's defaults apply)."""
    try:
        from ament_index_python.packages import get_package_share_directory

        path = Path(get_package_share_directory(PACKAGE)) / PARAMS_FILE
        if path.is_file():
            return str(path)
    except (ImportError, LookupError, OSError, ValueError):
        # Not installed through colcon (pip -e, no AMENT_PREFIX_PATH): the source copy.
        pass
    source = Path(__file__).resolve().parents[1] / PARAMS_FILE
    return str(source) if source.is_file() else ""


def with_launch_arguments(
    specs: list[NodeSpec],
    *,
    params_file: str = "",
    autostart: bool | None = None,
    lifecycle_manager: bool = False,
) -> list[NodeSpec]:
    """The specs with the launch arguments that apply to every policy node.

    `params_file` is read before each node's own parameters (which win);
    `autostart` (None: as the params file or the node's default says) sets the
    parameter; `lifecycle_manager` turns autostart off, because a manager's
    first `configure` must meet an unconfigured node.
    """
    if params_file and not Path(params_file).expanduser().is_file():
        raise ConfigError(
            f"launch argument params_file:={params_file!r} is not a file; give a"
            " policy-node parameters YAML (see config/policy_node.yaml) or leave it unset"
        )
    if lifecycle_manager:
        autostart = False
    out = []
    for spec in specs:
        if spec.executable != POLICY_NODE:
            out.append(spec)
            continue
        files = (str(Path(params_file).expanduser()),) if params_file else ()
        params = dict(spec.parameters)
        if autostart is not None:
            params["autostart"] = bool(autostart)
        out.append(
            replace(spec, parameters=params, parameter_files=(*files, *spec.parameter_files))
        )
    return out


def policy_autostart(spec: NodeSpec) -> bool:
    """The node's `autostart` as ROS will resolve it: a `-p` value over the
    params files, a later file over an earlier one, else the node's default."""
    if "autostart" in spec.parameters:
        return bool(spec.parameters["autostart"])
    value = None
    for path in spec.parameter_files:
        found = file_parameter(path, spec, "autostart")
        if found is not None:
            value = found
    if value is None:
        from swarm_controller.parameters import PARAMETERS

        value = next(p.default for p in PARAMETERS if p.name == "autostart")
    return bool(value)


def file_parameter(path: str | Path, spec: NodeSpec, name: str) -> Any:
    """Parameter `name` for the node of `spec` in a ROS params file, or None.

    Keys name nodes as rcl does: `/ns/node`, `node` (root namespace), with `*`
    for one name and `/**` for any namespace; nested namespace keys also work.
    """
    node = f"{spec.namespace.rstrip('/')}/{spec.name}"
    value = None
    for key, parameters in _file_node_sections(load_yaml(path), ""):
        if _node_key_matches(key, node) and name in parameters:
            value = parameters[name]
    return value


def _file_node_sections(data: Any, prefix: str) -> list[tuple[str, dict]]:
    sections = []
    if not isinstance(data, dict):
        return sections
    for key, value in data.items():
        if key == "ros__parameters" and isinstance(value, dict):
            sections.append((prefix or "/", value))
        elif isinstance(value, dict):
            sections += _file_node_sections(value, f"{prefix}/{str(key).strip('/')}")
    return sections


def _node_key_matches(key: str, node: str) -> bool:
    parts = [p for p in key.split("/") if p]
    pattern = ""
    for part in parts:
        if part == "**":
            pattern += "(/[^/]+)*"
        else:
            pattern += "/" + re.escape(part).replace(r"\*", "[^/]+")
    return re.fullmatch(pattern or "/", node) is not None


def policy_lifecycle(spec: NodeSpec, *, lifecycle_manager: bool = False) -> str:
    """Who takes a node to active: "" (not a lifecycle node, e.g. the bridge),
    LIFECYCLE_SELF (autostart), LIFECYCLE_LAUNCH (the launch file sends
    configure, then activate, after each start, respawns included) or
    LIFECYCLE_MANAGER (lifecycle_manager:=true: nobody but the manager)."""
    if spec.executable != POLICY_NODE:
        return ""
    if policy_autostart(spec):
        return LIFECYCLE_SELF
    return LIFECYCLE_MANAGER if lifecycle_manager else LIFECYCLE_LAUNCH


def policy_node_arguments() -> list:
    """The launch arguments every launch file takes for its policy nodes."""
    from launch.actions import DeclareLaunchArgument

    return [
        DeclareLaunchArgument(
            "params_file",
            default_value=installed_params_file(),
            description="Policy-node parameters YAML, read before the launch's own settings"
            " (default: the installed config/policy_node.yaml).",
        ),
        DeclareLaunchArgument(
            "autostart",
            default_value="",
            choices=["", "true", "false"],
            description="Set the nodes' autostart; empty: as params_file says. With false"
            " this launch configures and activates the nodes itself.",
        ),
        DeclareLaunchArgument(
            "lifecycle_manager",
            default_value="false",
            choices=["true", "false"],
            description="true: your lifecycle manager (e.g. nav2_lifecycle_manager) drives"
            " the transitions; the nodes start unconfigured and wait for it.",
        ),
    ]


def launch_nodes(specs: list[NodeSpec], context: Any) -> list:
    """The launch actions for `specs` under the launch arguments of
    `policy_node_arguments` (read from the launch `context`)."""
    from launch.substitutions import LaunchConfiguration

    def arg(name: str) -> str:
        return LaunchConfiguration(name).perform(context)

    manager = parse_flag(arg("lifecycle_manager"), "lifecycle_manager")
    specs = with_launch_arguments(
        specs,
        params_file=arg("params_file"),
        autostart=parse_optional_flag(arg("autostart"), "autostart"),
        lifecycle_manager=manager,
    )
    return launch_actions(specs, lifecycle_manager=manager)


def launch_actions(
    specs: list[NodeSpec], *, lifecycle_manager: bool = False, output: str = "screen"
) -> list:
    """launch_ros actions for the specs: one GroupAction per node that pushes
    its namespace, then starts it (respawning when the spec says so, at most
    `respawn_max_retries` times). A policy node that does not autostart is a
    launch_ros LifecycleNode; unless `lifecycle_manager`, the launch file
    configures it after each start and activates it once configured."""
    from launch.actions import EmitEvent, GroupAction, RegisterEventHandler
    from launch.event_handlers import OnProcessStart
    from launch.events import matches_action
    from launch_ros.actions import LifecycleNode, Node, PushRosNamespace
    from launch_ros.event_handlers import OnStateTransition
    from launch_ros.events.lifecycle import ChangeState
    from lifecycle_msgs.msg import Transition

    actions = []
    for spec in specs:
        role = policy_lifecycle(spec, lifecycle_manager=lifecycle_manager)
        settings = dict(
            package=spec.package,
            executable=spec.executable,
            name=spec.name,
            parameters=[
                *spec.parameter_files,
                *([dict(spec.parameters)] if spec.parameters else []),
            ],
            remappings=list(spec.remappings),
            respawn=spec.respawn,
            respawn_delay=spec.respawn_delay,
            respawn_max_retries=spec.respawn_max_retries if spec.respawn else -1,
            output=output,
        )
        if role in (LIFECYCLE_LAUNCH, LIFECYCLE_MANAGER):
            # LifecycleNode wants a namespace; the absolute one leaves no doubt
            # about the name its lifecycle services and events are found under.
            node = LifecycleNode(namespace=spec.namespace or "/", **settings)
        else:
            node = Node(**settings)
        scoped = [PushRosNamespace(spec.namespace)] if spec.namespace else []
        actions.append(GroupAction([*scoped, node]))
        if role != LIFECYCLE_LAUNCH:
            continue

        def change(transition: int, node=node) -> EmitEvent:
            return EmitEvent(
                event=ChangeState(
                    lifecycle_node_matcher=matches_action(node), transition_id=transition
                )
            )

        # On every process start (a respawn too): configure; once configured
        # (not after a deactivate from outside): activate.
        actions.append(
            RegisterEventHandler(
                OnProcessStart(
                    target_action=node, on_start=[change(Transition.TRANSITION_CONFIGURE)]
                )
            )
        )
        actions.append(
            RegisterEventHandler(
                OnStateTransition(
                    target_lifecycle_node=node,
                    start_state="configuring",
                    goal_state="inactive",
                    entities=[change(Transition.TRANSITION_ACTIVATE)],
                )
            )
        )
    return actions
