"""The node's status: counters, rates and the last problems, reported as a DiagnosticArray.

Levels, worst first: ERROR "no data received" (naming the topics and the sync policy awaited),
ERROR "internal error", ERROR "lost" (no pose for the last frame, with the reason), WARN "few
matches", WARN "input rejected" (a bad frame within the last ``no_data_timeout_s``), OK.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from std_msgs.msg import Header

from edm_ros.pipeline import PipelineOutput, TrackingState

_RATE_WINDOW_S = 5.0  # processed frames per second over this window
_LEVEL_NAMES = {
    DiagnosticStatus.OK: "OK",
    DiagnosticStatus.WARN: "WARN",
    DiagnosticStatus.ERROR: "ERROR",
}


@dataclass(frozen=True)
class StatusReport:
    """One diagnostic: level (a DiagnosticStatus constant), message and key/value pairs."""

    level: bytes
    message: str
    values: tuple[tuple[str, str], ...]


class NodeStatus:
    """Thread-safe record of what the node received, processed, dropped and rejected."""

    def __init__(
        self, no_data_timeout_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        """Args:
        no_data_timeout_s: ERROR "no data received" after this long without a frame, seconds;
            also how long a rejected frame keeps the level at WARN.
        clock: Monotonic seconds (injectable for tests).
        """
        self._timeout_s = no_data_timeout_s
        self._clock = clock
        self._lock = threading.Lock()
        self._started_s = clock()
        self._last_frame_s: float | None = None
        self._processed_times: deque[float] = deque()
        self.frames_received = 0
        self.frames_processed = 0
        self.frames_rejected = 0
        self.internal_errors = 0
        self.poses_published = 0
        self._last_output: PipelineOutput | None = None
        self._latency_ms = 0.0
        self._inference_ms = 0.0
        self._problem: tuple[float, str] | None = None  # (time, text) of the last bad input
        self._error: tuple[float, str] | None = None  # (time, text) of the last internal error

    def frame_received(self) -> None:
        """A synchronised frame arrived (before the drop-if-busy slot)."""
        with self._lock:
            self.frames_received += 1
            self._last_frame_s = self._clock()

    def frame_processed(self, output: PipelineOutput, latency_ms: float) -> None:
        """The pipeline finished a frame; ``latency_ms`` from its arrival to its publication."""
        now = self._clock()
        with self._lock:
            self.frames_processed += 1
            self.poses_published += output.tracked
            self._last_output = output
            self._latency_ms = latency_ms
            self._inference_ms = sum(pair.result.inference_ms for pair in output.pairs)
            self._processed_times.append(now)
            while self._processed_times and now - self._processed_times[0] > _RATE_WINDOW_S:
                self._processed_times.popleft()

    def frame_rejected(self, reason: str) -> None:
        """A frame could not be used (bad encoding, sizes, stamps, ...)."""
        with self._lock:
            self.frames_rejected += 1
            self._problem = (self._clock(), reason)

    def input_warning(self, reason: str) -> None:
        """A frame was used despite a problem (no camera_info, stamps going backwards)."""
        with self._lock:
            self._problem = (self._clock(), reason)

    def internal_error(self, reason: str) -> None:
        """An unexpected exception in the node (a bug): reported as ERROR."""
        with self._lock:
            self.internal_errors += 1
            self._error = (self._clock(), reason)

    def report(self, waiting_for: str, dropped: int) -> StatusReport:
        """The current diagnostic.

        Args:
            waiting_for: What the inputs wait for (topics, counts, sync policy).
            dropped: Frames replaced in the drop-if-busy slot before being processed.
        """
        now = self._clock()
        with self._lock:
            level, message = self._level_and_message(now, waiting_for)
            values = self._values(now, dropped, waiting_for)
        return StatusReport(level, message, values)

    def _level_and_message(self, now: float, waiting_for: str) -> tuple[bytes, str]:
        since = self._last_frame_s if self._last_frame_s is not None else self._started_s
        if now - since > self._timeout_s:
            what = "no data received" if self._last_frame_s is None else "no data received since"
            return DiagnosticStatus.ERROR, f"{what} {now - since:.1f} s: {waiting_for}"
        if self._error is not None and now - self._error[0] <= self._timeout_s:
            return DiagnosticStatus.ERROR, f"internal error: {self._error[1]}"
        output = self._last_output
        if output is None:
            level, message = DiagnosticStatus.OK, "waiting for the first processed frame"
        elif output.state is TrackingState.LOST:
            level, message = DiagnosticStatus.ERROR, f"lost: {output.reason}"
        elif output.state is TrackingState.FEW_MATCHES:
            level, message = DiagnosticStatus.WARN, f"few matches: {output.reason}"
        elif output.state is TrackingState.INITIALISING:
            level, message = DiagnosticStatus.OK, f"initialising: {output.reason}"
        else:
            level, message = DiagnosticStatus.OK, "tracking"
        if self._problem is not None and now - self._problem[0] <= self._timeout_s:
            level = max(level, DiagnosticStatus.WARN)
            message += f"; bad input: {self._problem[1]}"
        return level, message

    def _values(self, now: float, dropped: int, waiting_for: str) -> tuple[tuple[str, str], ...]:
        output = self._last_output
        window = [t for t in self._processed_times if now - t <= _RATE_WINDOW_S]
        rate_hz = (len(window) - 1) / (window[-1] - window[0]) if len(window) > 1 else 0.0
        stereo = [len(p.result) for p in output.pairs if p.mode == "stereo"] if output else []
        return (
            ("state", output.state.value if output else "no frame yet"),
            ("inputs", waiting_for),
            ("frames received", str(self.frames_received)),
            ("frames processed", str(self.frames_processed)),
            ("frames dropped (busy)", str(dropped)),
            ("frames rejected", str(self.frames_rejected)),
            ("poses published", str(self.poses_published)),
            ("internal errors", str(self.internal_errors)),
            ("processing rate (Hz)", f"{rate_hz:.2f}"),
            ("latency (ms)", f"{self._latency_ms:.1f}"),
            ("inference (ms)", f"{self._inference_ms:.1f}"),
            ("matches", str(output.temporal_matches if output else 0)),
            ("stereo matches", str(stereo[0] if stereo else 0)),
            ("inliers", str(output.num_inliers if output else 0)),
            ("last bad input", self._problem[1] if self._problem else ""),
            ("last internal error", self._error[1] if self._error else ""),
        )


def diagnostic_array(
    report: StatusReport, name: str, hardware_id: str, stamp: Header
) -> DiagnosticArray:
    """``report`` as the ``/diagnostics`` message.

    Args:
        report: From :meth:`NodeStatus.report`.
        name: Status name, e.g. "edm: matcher" (diagnostic_updater style "<node>: <task>").
        hardware_id: What runs it (device and weights).
        stamp: Header of the array (the node's clock now).
    """
    status = DiagnosticStatus(
        level=report.level, name=name, message=report.message, hardware_id=hardware_id
    )
    status.values = [KeyValue(key=key, value=value) for key, value in report.values]
    return DiagnosticArray(header=stamp, status=[status])


def level_name(level: bytes) -> str:
    """ "OK", "WARN" or "ERROR" for a DiagnosticStatus level byte."""
    return _LEVEL_NAMES.get(level, repr(level))
