"""edm_ros.ros.diagnostics: levels, messages and values of the node's status."""

from __future__ import annotations

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticStatus
from std_msgs.msg import Header

from edm_ros.geometry.pose import RelativePose
from edm_ros.pipeline import PairMatches, PipelineOutput, Stamped, TrackingState
from edm_ros.results import MatchResult
from edm_ros.ros.diagnostics import NodeStatus, diagnostic_array, level_name

WAITING = "waiting for /image (0 received), /camera_info (0 received) with exact sync"


class Clock:
    def __init__(self) -> None:
        self.now_s = 100.0

    def __call__(self) -> float:
        return self.now_s


def _output(
    state: TrackingState, matches: int, reason: str = "", inliers: int = 0
) -> PipelineOutput:
    points = np.zeros((matches, 2), np.float32)
    result = MatchResult(
        points,
        points,
        np.ones(matches, np.float32),
        np.ones(matches, np.float32),
        (64, 48),
        (64, 48),
        20.0,
    )
    mask = np.arange(matches) < inliers
    pose = RelativePose(True, "", np.eye(3), np.array([0, 0, 1.0]), False, mask, np.eye(6))
    pair = PairMatches(
        "sequential", Stamped(1, "a"), Stamped(2, "a"), result, None, (points, points)
    )
    has_pose = state in (TrackingState.OK, TrackingState.FEW_MATCHES)
    return PipelineOutput(
        (pair,),
        pose if has_pose else None,
        Stamped(1, "a"),
        Stamped(2, "a"),
        state,
        reason,
        "",
        matches,
        False,
        None,
    )


@pytest.fixture
def clock() -> Clock:
    return Clock()


def _values(status: NodeStatus, dropped: int = 0) -> dict[str, str]:
    return dict(status.report(WAITING, dropped).values)


def test_no_data_names_the_topics_and_sync_policy(clock: Clock) -> None:
    status = NodeStatus(no_data_timeout_s=5.0, clock=clock)
    assert status.report(WAITING, 0).level == DiagnosticStatus.OK
    clock.now_s += 6.0
    report = status.report(WAITING, 0)
    assert report.level == DiagnosticStatus.ERROR
    assert report.message == f"no data received 6.0 s: {WAITING}"


def test_data_stopping_is_an_error_again(clock: Clock) -> None:
    status = NodeStatus(no_data_timeout_s=5.0, clock=clock)
    status.frame_received()
    status.frame_processed(_output(TrackingState.OK, 300, inliers=200), latency_ms=30.0)
    assert status.report(WAITING, 0).message == "tracking"
    clock.now_s += 7.0
    assert status.report(WAITING, 0).message.startswith("no data received since 7.0 s")


@pytest.mark.parametrize(
    ("state", "reason", "level", "message"),
    [
        (TrackingState.OK, "", DiagnosticStatus.OK, "tracking"),
        (TrackingState.FEW_MATCHES, "12 matches < 50", DiagnosticStatus.WARN, "few matches: 12"),
        (TrackingState.LOST, "no pose: 3 inliers < 15", DiagnosticStatus.ERROR, "lost: no pose"),
        (TrackingState.INITIALISING, "first frame", DiagnosticStatus.OK, "initialising: first"),
    ],
)
def test_tracking_state_sets_level_and_message(
    clock: Clock, state: TrackingState, reason: str, level: bytes, message: str
) -> None:
    status = NodeStatus(no_data_timeout_s=5.0, clock=clock)
    status.frame_received()
    status.frame_processed(_output(state, 12, reason), latency_ms=10.0)
    report = status.report(WAITING, 0)
    assert (level_name(report.level), report.message[: len(message)]) == (
        level_name(level),
        message,
    )


def test_bad_input_warns_with_its_reason_then_expires(clock: Clock) -> None:
    status = NodeStatus(no_data_timeout_s=5.0, clock=clock)
    status.frame_received()
    status.frame_processed(_output(TrackingState.OK, 300), latency_ms=10.0)
    status.frame_rejected("image encoding 'yuv422' is not supported")
    report = status.report(WAITING, 0)
    assert report.level == DiagnosticStatus.WARN
    assert report.message == "tracking; bad input: image encoding 'yuv422' is not supported"
    assert _values(status)["frames rejected"] == "1"
    clock.now_s += 4.0
    status.frame_received()
    clock.now_s += 2.0
    assert status.report(WAITING, 0).level == DiagnosticStatus.OK


def test_internal_error_is_an_error(clock: Clock) -> None:
    status = NodeStatus(no_data_timeout_s=5.0, clock=clock)
    status.frame_received()
    status.internal_error("ValueError: boom")
    report = status.report(WAITING, 0)
    assert report.level == DiagnosticStatus.ERROR
    assert report.message == "internal error: ValueError: boom"
    assert _values(status)["internal errors"] == "1"


def test_values_report_counts_rate_latency_matches_and_drops(clock: Clock) -> None:
    status = NodeStatus(no_data_timeout_s=5.0, clock=clock)
    for _ in range(5):
        status.frame_received()
        status.frame_received()
        status.frame_processed(_output(TrackingState.OK, 300, inliers=120), latency_ms=42.0)
        clock.now_s += 0.5
    values = _values(status, dropped=5)
    assert values["frames received"] == "10" and values["frames processed"] == "5"
    assert values["frames dropped (busy)"] == "5"
    assert values["processing rate (Hz)"] == "2.00"
    assert values["latency (ms)"] == "42.0" and values["inference (ms)"] == "20.0"
    assert (values["matches"], values["inliers"]) == ("300", "120")
    assert values["poses published"] == "5"
    assert values["inputs"] == WAITING


def test_diagnostic_array_message(clock: Clock) -> None:
    status = NodeStatus(no_data_timeout_s=5.0, clock=clock)
    array = diagnostic_array(status.report(WAITING, 0), "edm: matcher", "cpu", Header())
    (entry,) = array.status
    assert (entry.name, entry.hardware_id, entry.level) == ("edm: matcher", "cpu", b"\x00")
    assert {value.key for value in entry.values} >= {"frames dropped (busy)", "latency (ms)"}
