"""A node of this process on the swarm's ROS graph: what demo, swap, deploy, the
benchmarks and the tests do from the outside of the robots.

`BackgroundNode` is an rclpy node in a context of its own, spun by an executor
on a daemon thread while the caller's code runs; `close()` (or leaving its
`with` block, after an error too) stops the thread and shuts the context down.
It installs no signal handlers: Ctrl-C stays a KeyboardInterrupt for whoever
owns the process. The functions around it are the calls every user of such a
node repeats: wait for a condition (a timeout that names what was awaited),
call a service, set parameters as `ros2 param set` does, and the latched QoS
of topics that keep their last messages for late subscribers.

rclpy is imported when a node is made, so importing this module needs no ROS.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

SPIN_PERIOD = 0.05
"""Seconds one spin of the background executor waits for work; also how long
`close()` may wait for the thread to notice it should stop."""


class BackgroundNode:
    """An rclpy node spun on a daemon thread, in its own context.

    `domain_id` None: the ROS_DOMAIN_ID of the environment (0 when unset).
    Entities can be added to `node` at any time, also while it spins.
    """

    def __init__(self, name: str, *, domain_id: int | None = None) -> None:
        import rclpy
        from rclpy.context import Context
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.signals import SignalHandlerOptions

        self.context = Context()
        # args=[]: the caller's command line is not a ROS one.
        rclpy.init(
            args=[],
            context=self.context,
            domain_id=domain_id,
            signal_handler_options=SignalHandlerOptions.NO,
        )
        try:
            self.node = rclpy.create_node(name, context=self.context)
            self.executor = SingleThreadedExecutor(context=self.context)
            self.executor.add_node(self.node)
        except BaseException:
            self.context.try_shutdown()
            raise
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._spin, name=f"{name}-spin", daemon=True)
        self._thread.start()

    def __enter__(self) -> BackgroundNode:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _spin(self) -> None:
        while not self._stopping.is_set():
            try:
                self.executor.spin_once(timeout_sec=SPIN_PERIOD)
            except Exception:
                # The context going down under a spin ends it; anything else
                # is a callback's bug and must be seen.
                if self._stopping.is_set() or not self.context.ok():
                    return
                raise

    def close(self) -> None:
        """Stop spinning, destroy the node, shut the context down; safe to call twice."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        self._thread.join(timeout=2.0)
        try:
            self.executor.shutdown(timeout_sec=1.0)
            self.node.destroy_node()
        finally:
            self.context.try_shutdown()


def wait_for(
    predicate: Callable[[], Any],
    timeout: float,
    what: str,
    *,
    stop: Callable[[], str | None] | None = None,
    poll: float = 0.02,
) -> Any:
    """The first truthy value of `predicate()`, polled every `poll` s.

    TimeoutError naming `what` after `timeout` s. `stop()`, when given, is
    polled too: a message from it (a node process died, say) ends the wait
    with RuntimeError at once instead of at the timeout.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        problem = stop() if stop is not None else None
        if problem:
            raise RuntimeError(f"while waiting for {what}: {problem}")
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(poll)


def discover_until_settled(
    found_now: Callable[[], set[str]], timeout: float, settle: float
) -> set[str]:
    """What `found_now()` sees on the graph, once the set stops growing.

    Discovery trickles in: on a busy machine (or a fleet on Wi-Fi) a second
    robot can appear well after the first, so the wait ends only when nothing
    new was found for `settle` seconds, or at `timeout`.
    """
    deadline = time.monotonic() + timeout
    found: set[str] = set()
    last_change = time.monotonic()
    while time.monotonic() < deadline:
        new = found_now() - found
        if new:
            found |= new
            last_change = time.monotonic()
        elif found and time.monotonic() - last_change >= settle:
            break
        time.sleep(0.05)
    return found


def wait_future(future, timeout: float) -> Any:
    """The result of an rclpy future that a spinning executor completes; None after
    `timeout` s without one."""
    done = threading.Event()
    future.add_done_callback(lambda _future: done.set())
    if not done.wait(max(0.0, timeout)):
        return None
    return future.result()


def call_service(node, srv_type, service: str, request, timeout: float) -> Any:
    """Call `service` once from a spinning node; TimeoutError when the service does
    not appear or does not answer within `timeout` s."""
    client = node.create_client(srv_type, service)
    try:
        deadline = time.monotonic() + timeout
        if not client.wait_for_service(timeout_sec=timeout):
            raise TimeoutError(f"no {service} service within {timeout:g} s (is the node running?)")
        response = wait_future(client.call_async(request), deadline - time.monotonic())
        if response is None:
            raise TimeoutError(f"{service} gave no answer within {timeout:g} s")
        return response
    finally:
        node.destroy_client(client)


def parameters_request(values: Mapping[str, Any]):
    """A SetParameters request setting each name to its value (types as rclpy infers them)."""
    from rcl_interfaces.srv import SetParameters
    from rclpy.parameter import Parameter

    return SetParameters.Request(
        parameters=[
            Parameter(name, value=value).to_parameter_msg() for name, value in values.items()
        ]
    )


def set_parameters(node, node_name: str, values: Mapping[str, Any], timeout: float) -> list:
    """Set parameters of the node `node_name` (fully qualified, e.g. /robot_0/policy_node)
    the way `ros2 param set` does; one SetParametersResult per value, in order."""
    from rcl_interfaces.srv import SetParameters

    service = f"{node_name.rstrip('/')}/set_parameters"
    response = call_service(node, SetParameters, service, parameters_request(values), timeout)
    return list(response.results)


def latched_qos(depth: int = 1):
    """Reliable, transient-local QoS: a late subscriber still gets the last `depth`
    messages (a robot's goal, a node's active policy, the bridge's events)."""
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

    return QoSProfile(
        depth=depth,
        reliability=ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.TRANSIENT_LOCAL,
    )
