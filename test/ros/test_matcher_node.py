"""The matcher node as a process (sequential mode): outputs, bad input, drop-if-busy, parameters.

The node runs as the installed executable with a params file; this process publishes rendered
frames and receives the outputs over DDS on loopback. The weights are random, so these tests check
content (stamps, frames, lengths, covariance, diagnostics), not pose accuracy (see
test/test_pipeline.py for that, on exact correspondences).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from rcl_interfaces.srv import SetParameters
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image

from edm_ros.data.synthetic import stereo_sequence
from edm_ros.model.checkpoint import RANDOM_WEIGHTS
from edm_ros.pipeline import Stamped
from edm_ros.ros.conversions import header_of, numpy_to_image, stamp_to_ns
from edm_ros.ros.player import (
    LEFT_FRAME,
    FramePlayer,
    FrameRecord,
    match_array_problems,
    sequence_frame_messages,
)
from edm_ros.ros.processes import start_logged, stop, write_params_file
from test.ros.conftest import (
    CONFIG_DIR,
    TEST_PARAMS,
    NodeProcess,
    node_with_player,
    params_file_arguments,
)

WIDTH, HEIGHT = 320, 256
TIMEOUT_S = 30.0
SEQUENCE = stereo_sequence(4, WIDTH, HEIGHT, seed=1)


class Stream:
    """Frames with ever increasing stamps, shared by the tests of this module (one node)."""

    def __init__(self, player: FramePlayer, node: NodeProcess) -> None:
        self.player = player
        self.node = node
        self.next_index = 0

    def messages(self) -> tuple[int, list[np.ndarray], list]:
        index = self.next_index
        self.next_index += 1
        images, infos = sequence_frame_messages(SEQUENCE, "sequential", index)
        return index, images, infos

    def send(self) -> FrameRecord:
        index, images, infos = self.messages()
        return self.player.publish_frame(index, images, infos)

    def send_and_wait(self) -> FrameRecord:
        """A good frame, and its MatchArray (and its pose if the MatchArray has inliers)."""
        record = self.send()
        self.wait(lambda: record.matches, f"matches of frame {record.index}")
        if len(record.matches[0][1].inlier_mask):
            self.wait(lambda: record.pose is not None, "its pose")
        return record

    def wait(self, condition, what: str) -> None:
        """Spin until ``condition()``; on timeout fail with the node's log."""
        try:
            self.player.wait_until(condition, TIMEOUT_S, what)
        except TimeoutError as err:
            pytest.fail(f"{err}; node log:\n{self.node.log()[-4000:]}")

    def wait_for_log(self, text: str) -> None:
        self.wait(lambda: text in self.node.log(), f"log line {text!r}")

    def wait_for_diagnostic(self, condition, what: str) -> dict[str, str]:
        start = len(self.player.diagnostics)

        def arrived() -> bool:
            return any(condition(status) for status in self.player.diagnostics[start:])

        self.wait(arrived, what)
        status = next(s for s in self.player.diagnostics[start:] if condition(s))
        return {"message": status.message, **{kv.key: kv.value for kv in status.values}}

    def set_parameters(self, **values: object) -> list:
        client = self.player.node.create_client(SetParameters, "/edm/set_parameters")
        try:
            self.wait(client.service_is_ready, "/edm/set_parameters")
            request = SetParameters.Request(
                parameters=[Parameter(k, value=v).to_parameter_msg() for k, v in values.items()]
            )
            future = client.call_async(request)
            self.wait(future.done, "the set_parameters response")
            return list(future.result().results)
        finally:
            self.player.node.destroy_client(client)


@pytest.fixture(scope="module")
def stream(tmp_path_factory, probe_node) -> Iterator[Stream]:
    folder = tmp_path_factory.mktemp("sequential")
    with node_with_player(folder, probe_node, "sequential") as (player, node):
        yield Stream(player, node)


def test_no_data_diagnostic_names_the_topics_and_sync_policy(stream: Stream) -> None:
    status = stream.wait_for_diagnostic(
        lambda s: s.level == b"\x02" and "no data received" in s.message, "'no data' ERROR"
    )
    assert "/image (0 received), /camera_info (0 received)" in status["message"]
    assert "exact sync (identical header stamps)" in status["message"]
    stream.wait_for_log("no data received")  # and a (throttled) warning in the log


def test_images_without_camera_info_are_reported_as_such(stream: Stream) -> None:
    _, images, infos = stream.messages()
    stream.player.publish("image", numpy_to_image(images[0], "mono8", infos[0].header))
    status = stream.wait_for_diagnostic(
        lambda s: "/image (1 received), /camera_info (0 received)" in s.message,
        "a diagnostic counting one image and no camera_info",
    )
    assert status["message"].startswith("no data received")


def test_frames_give_match_arrays_and_poses_stamped_like_the_inputs(stream: Stream) -> None:
    first = stream.send()
    stream.player.wait_for_processed(1, TIMEOUT_S)  # or the next frame could replace it
    records = [stream.send_and_wait() for _ in range(3)]
    assert not first.matches  # nothing to match the first frame with
    reference_stamps = [first.stamp_ns] + [r.stamp_ns for r in records[:-1]]
    for record, reference_ns in zip(records, reference_stamps):
        ((_, msg),) = record.matches
        assert match_array_problems(msg) == []
        assert msg.mode == "sequential"
        assert (stamp_to_ns(msg.header.stamp), msg.header.frame_id) == (record.stamp_ns, LEFT_FRAME)
        assert stamp_to_ns(msg.reference_header.stamp) == reference_ns
        assert (msg.width, msg.height, msg.reference_width, msg.reference_height) == (
            WIDTH,
            HEIGHT,
            WIDTH,
            HEIGHT,
        )
        assert len(msg.confidence) > 20 and msg.inference_ms > 0
        mask = np.frombuffer(bytes(msg.inlier_mask), np.uint8)
        assert len(mask) == len(msg.confidence) and mask.sum() >= 8  # min_inliers of the test
        _check_pose(record, msg_inliers=int(mask.sum()))


def _check_pose(record: FrameRecord, msg_inliers: int) -> None:
    pose = record.pose
    assert pose is not None and msg_inliers > 0
    assert (stamp_to_ns(pose.header.stamp), pose.header.frame_id) == (record.stamp_ns, LEFT_FRAME)
    position = pose.pose.pose.position
    translation = np.array([position.x, position.y, position.z])
    assert np.linalg.norm(translation) == pytest.approx(1.0, abs=1e-6)  # monocular: a direction
    q = pose.pose.pose.orientation
    assert np.linalg.norm([q.x, q.y, q.z, q.w]) == pytest.approx(1.0, abs=1e-6)
    covariance = np.asarray(pose.pose.covariance).reshape(6, 6)
    assert np.all(np.isfinite(covariance)) and np.all(np.diag(covariance) > 0)
    assert translation @ covariance[:3, :3] @ translation > 1e3  # unknown scale, said loudly
    assert np.all(np.diag(covariance)[3:] < 1.0)  # the rotation is known


def test_debug_image_shows_the_last_pair(stream: Stream) -> None:
    images: list[Image] = []
    node = stream.player.node
    subscription = node.create_subscription(Image, "/edm/debug_image", images.append, 10)
    try:
        stream.wait(
            lambda: (
                node.count_publishers("/edm/debug_image") > 0
                and subscription.get_publisher_count() > 0
            ),
            "the debug image publisher",
        )
        record = stream.send_and_wait()
        stream.wait(
            lambda: any(stamp_to_ns(i.header.stamp) == record.stamp_ns for i in images),
            "the debug image of the frame",
        )
    finally:
        node.destroy_subscription(subscription)
    image = next(i for i in images if stamp_to_ns(i.header.stamp) == record.stamp_ns)
    assert (image.encoding, image.width, image.height) == ("bgr8", 2 * WIDTH, HEIGHT)


def _bad_image(encoding: str, array: np.ndarray, header) -> Image:
    return numpy_to_image(array, encoding, header)


def test_bad_inputs_are_rejected_with_warnings_and_the_node_keeps_working(stream: Stream) -> None:
    stream.send_and_wait()  # a reference frame
    bad_frames = {
        "image encoding 'yuv422' is not supported": lambda h: Image(
            header=h,
            height=HEIGHT,
            width=WIDTH,
            encoding="yuv422",
            step=2 * WIDTH,
            data=bytes(2 * WIDTH * HEIGHT),
        ),
        "image is 0x0 pixels": lambda h: Image(header=h, encoding="mono8"),
        "image is 1x1 pixels": lambda h: _bad_image("mono8", np.zeros((1, 1), np.uint8), h),
        "NaN/infinite pixels (a depth map?)": lambda h: _bad_image(
            "32FC1", np.full((HEIGHT, WIDTH), np.nan, np.float32), h
        ),
        "cannot hold 256 rows": lambda h: Image(
            header=h, height=HEIGHT, width=WIDTH, encoding="mono8", step=WIDTH, data=bytes(99)
        ),
    }
    for text, make_image in bad_frames.items():
        _, _, infos = stream.messages()
        stream.player.publish("camera_info", infos[0])
        stream.player.publish("image", make_image(infos[0].header))
        stream.wait_for_diagnostic(lambda s, t=text: t in s.message, f"a diagnostic with {text!r}")
    for text in ("yuv422", "image is 0x0 pixels", "NaN/infinite", "cannot hold 256 rows"):
        assert text in stream.node.log()  # one warning per kind ("1x1" is the kind of "0x0")
    _check_uncalibrated_frame_still_gives_matches(stream)
    _check_stamps_going_backwards_restart_matching(stream)
    good = stream.send_and_wait()
    assert good.pose is not None and stream.node.process.poll() is None
    status = stream.wait_for_diagnostic(
        lambda s: dict((kv.key, kv.value) for kv in s.values)["frames rejected"] == "5",
        "diagnostics counting 5 rejected frames",
    )
    assert status["last bad input"]


def _check_uncalibrated_frame_still_gives_matches(stream: Stream) -> None:
    index, images, infos = stream.messages()
    infos[0].k = np.zeros(9)
    infos[0].p = np.zeros(12)
    record = stream.player.publish_frame(index, images, infos)
    stream.wait(lambda: record.matches, "matches of an uncalibrated frame")
    msg = record.matches[0][1]
    assert len(msg.confidence) > 0 and len(msg.inlier_mask) == 0  # matches, but no pose
    stream.wait_for_log("/camera_info: camera_info P: values are all zero")
    status = stream.wait_for_diagnostic(lambda s: "lost" in s.message, "a 'lost' diagnostic")
    assert "no usable camera_info" in status["message"]
    assert record.pose is None


def _check_stamps_going_backwards_restart_matching(stream: Stream) -> None:
    _, images, infos = stream.messages()
    past = header_of(Stamped(stamp_to_ns(infos[0].header.stamp) - 10**9, LEFT_FRAME))
    infos[0].header = past
    stream.player.publish("camera_info", infos[0])
    stream.player.publish("image", numpy_to_image(images[0], "mono8", past))
    stream.wait_for_log("stamp went backwards by 0.967 s")  # 1 s before the next frame's stamp


def test_runtime_parameters_are_checked_and_applied(stream: Stream) -> None:
    (refused,) = stream.set_parameters(ransac_method="lmeds")
    assert (
        not refused.successful and "'lmeds' is not one of magsac, ransac, poselib" in refused.reason
    )
    (read_only,) = stream.set_parameters(match_threshold=0.5)
    assert not read_only.successful
    (accepted,) = stream.set_parameters(min_inliers=100_000)
    assert accepted.successful
    try:
        stream.send_and_wait()
        record = stream.send_and_wait()
        assert len(record.matches[0][1].inlier_mask) == 0 and record.pose is None
        status = stream.wait_for_diagnostic(lambda s: "min_inliers 100000" in s.message, "'lost'")
        assert status["message"].startswith("lost: no pose:")
    finally:
        stream.set_parameters(min_inliers=8)


def test_drop_if_busy_always_processes_the_newest_frame(stream: Stream) -> None:
    stream.send_and_wait()
    (limited,) = stream.set_parameters(max_rate_hz=5.0)  # a slow consumer on any machine
    assert limited.successful
    try:
        records = []
        for _ in range(45):  # 1.5 s at 30 Hz
            records.append(stream.send())
            stream.player.spin_until(records[-1].published_s + 1.0 / 30.0)
        last = records[-1]
        stream.wait(lambda: last.matches, "matches of the newest frame")
    finally:
        stream.set_parameters(max_rate_hz=0.0)
    processed = [r for r in records if r.matches]
    assert 2 <= len(processed) <= 25, "a 5 Hz consumer of a 30 Hz stream must skip frames"
    received_stamps = [
        stamp_to_ns(msg.header.stamp) for _, msg in stream.player.matches[-len(processed) :]
    ]
    assert received_stamps == sorted(received_stamps) == [r.stamp_ns for r in processed]
    for previous, current in itertools.pairwise(processed):
        assert stamp_to_ns(current.matches[0][1].reference_header.stamp) == previous.stamp_ns
    status = stream.wait_for_diagnostic(lambda s: True, "a diagnostic")
    dropped = int(status["frames dropped (busy)"])
    assert dropped >= 45 - len(processed) - 5  # the input queue (depth 5) may drop a few first
    assert int(status["frames received"]) == (
        int(status["frames processed"]) + int(status["frames rejected"]) + dropped
    )


def test_node_refuses_to_start_with_a_missing_weights_file(tmp_path: Path) -> None:
    missing = tmp_path / "missing.ckpt"
    params = write_params_file(
        tmp_path / "no_weights.yaml", {"device": "cpu", "weights_path": str(missing)}
    )
    node = NodeProcess(tmp_path / "node.log", [CONFIG_DIR / "matcher.yaml", params], [])
    code = node.wait(timeout_s=60)
    lines = [line for line in node.log().splitlines() if "cannot start" in line]
    assert code == 2 and len(lines) == 1, node.log()
    assert str(missing) in lines[0]


def test_node_lists_every_invalid_parameter_in_one_line(tmp_path: Path) -> None:
    bad = {
        "weights_path": RANDOM_WEIGHTS,
        "device": "gpu",
        "mode": "mono",
        "ransac_threshold_px": 50.0,
        "input_width": 100,
    }
    params = write_params_file(tmp_path / "bad.yaml", bad)
    node = NodeProcess(tmp_path / "node.log", [params], [])
    code = node.wait(timeout_s=60)
    (line,) = [line for line in node.log().splitlines() if "cannot start" in line]
    assert code == 2
    for text in ("device: 'gpu'", "mode: 'mono'", "ransac_threshold_px", "input_width 100"):
        assert text in line


# The node's main() with Ctrl-C at the moment it creates its input subscriptions: "signal" sends
# itself SIGINT (KeyboardInterrupt there, rclpy's handler thread shutting ROS down meanwhile),
# "shutdown" shuts ROS down first, as that thread may, so creating the subscriptions fails.
_CTRL_C_WHILE_STARTING = """
import os, signal, sys
import rclpy
from edm_ros.ros import matcher_node
how = sys.argv.pop(1)
subscribe_inputs = matcher_node.MatcherNode._subscribe_inputs
def interrupted_subscribe_inputs(self):
    if how == "signal":
        os.kill(os.getpid(), signal.SIGINT)
    else:
        rclpy.shutdown()
    return subscribe_inputs(self)
matcher_node.MatcherNode._subscribe_inputs = interrupted_subscribe_inputs
matcher_node.main()
"""


@pytest.mark.parametrize("how", ["signal", "shutdown"])
def test_ctrl_c_while_the_node_starts_ends_it_cleanly(tmp_path: Path, how: str) -> None:
    params = write_params_file(tmp_path / "params.yaml", TEST_PARAMS)
    files = [CONFIG_DIR / "matcher.yaml", CONFIG_DIR / "sequential.yaml", params]
    arguments = ["-c", _CTRL_C_WHILE_STARTING, how, *params_file_arguments(files)]
    log_path = tmp_path / "node.log"
    process = start_logged(arguments, log_path)
    try:
        code = process.wait(timeout=60)
    finally:
        stop(process)
    log = log_path.read_text()
    assert code == 0 and "Traceback" not in log and "weights:" in log, log
    assert "mode on" not in log, f"the node finished starting: Ctrl-C came too late\n{log}"
