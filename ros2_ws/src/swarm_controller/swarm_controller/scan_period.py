"""The lidar's scan period as measured, against the one a stacking model learned.

A model with scan_stack > 1 sees its last scans side by side and learned how
far things move between them at its contract's scan_period. The contract
check (robot_fit) refuses a model whose period the robot profile contradicts;
this check catches the robot's lidar contradicting its profile (an LDS-02 run
faster, a driver configured at another rate, a bridge publishing at 10 Hz).

The period is the median interval between the last WINDOW scans: header
stamps when consecutive stamps are set and increasing (the sensor's own
clock, also right under use_sim_time), the arrival times on the steady clock
otherwise. A median ignores a dropped or delayed scan now and then. Once
MIN_INTERVALS intervals were seen, a median off by more than TOLERANCE of the
model's scan_period is reported: /diagnostics turns WARN naming both periods.
A model with one scan per observation is never affected.

Decision: a mismatch warns, it does not hold the robot. What it costs is how
well the policy drives, not whether the robot is safe: every command still
passes the clamp and the safety layer (acceleration ramp, stop zone on the
newest scan), and a lidar that stops or breaks still holds the robot
(sensor_timeout, min_valid_ray_fraction). A hold would also turn a lidar
that is merely slow for a while (a loaded CPU, DDS over Wi-Fi) into a robot
stopped mid-mission. The refusal that matters happens before driving: at
configure and on every swap, against the profile's scan_period.
"""

from __future__ import annotations

import statistics
import threading
from collections import deque

from swarm_contract.robot_io import Contract

WINDOW = 20
"""Intervals the median is taken over (4 s of an LDS-01 at 5 Hz)."""
MIN_INTERVALS = 10
"""Intervals needed before the period is judged (11 scans)."""
TOLERANCE = 0.3
"""Relative difference from the contract's scan_period that is reported."""


class ScanPeriodMeter:
    """Intervals between the scans of one lidar; written by the control thread,
    read by the diagnostics timer's (a lock keeps the window consistent)."""

    def __init__(self, window: int = WINDOW) -> None:
        self._lock = threading.Lock()
        self._intervals: deque[float] = deque(maxlen=window)
        self._last: tuple[float | None, float] | None = None  # (stamp, arrival) of the last scan

    def reset(self) -> None:
        """Forget every scan (the subscription starts or ends)."""
        with self._lock:
            self._intervals.clear()
            self._last = None

    def arrived(self, stamp: float | None, arrival: float) -> None:
        """One scan: its header stamp in seconds (None when unset) and its arrival time."""
        with self._lock:
            last, self._last = self._last, (stamp, arrival)
            if last is None:
                return
            last_stamp, last_arrival = last
            if stamp is not None and last_stamp is not None and stamp > last_stamp:
                interval = stamp - last_stamp
            else:
                interval = arrival - last_arrival
            if interval > 0:
                self._intervals.append(interval)

    def period(self) -> tuple[float | None, int]:
        """(median interval in seconds, intervals it is taken over); None before any."""
        with self._lock:
            intervals = list(self._intervals)
        return (statistics.median(intervals) if intervals else None), len(intervals)


def period_problem(meter: ScanPeriodMeter, model: Contract | None) -> str:
    """Why the measured period does not suit the model's stack, or "" when it does
    (or cannot be judged yet, or the model takes one scan per observation)."""
    if model is None or model.scan_stack == 1:
        return ""
    measured, count = meter.period()
    if measured is None or count < MIN_INTERVALS:
        return ""
    expected = model.scan_period
    if abs(measured - expected) <= TOLERANCE * expected:
        return ""
    return (
        f"scan_period: the lidar sends a scan every {measured:.3f} s (median of {count}),"
        f" the model stacks {model.scan_stack} scans {expected:g} s apart; it drives on"
        " observations it was not trained on (check the lidar's rate and the robot profile)"
    )
