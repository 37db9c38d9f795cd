"""The matcher node as a process in stereo mode: approximate sync with jitter, both MatchArrays per
frame, the metric pose's header, mismatched stereo sizes, and a real EuRoC pair when present.

The node starts with ``weights_path: random`` (seeded random weights), which must be said loudly.
"""

from __future__ import annotations

from collections.abc import Iterator

import cv2
import numpy as np
import pytest

from edm_ros.data.datasets import read_pairs_gt_json
from edm_ros.data.synthetic import stereo_sequence
from edm_ros.model.checkpoint import RANDOM_WEIGHTS
from edm_ros.pipeline import Stamped
from edm_ros.ros.conversions import camera_info_from_matrices, header_of, stamp_to_ns
from edm_ros.ros.player import (
    LEFT_FRAME,
    RIGHT_FRAME,
    FramePlayer,
    FrameRecord,
    match_array_problems,
    sequence_frame_messages,
)
from test.conftest import DATA_DIR
from test.ros.conftest import NodeProcess, node_with_player

WIDTH, HEIGHT = 320, 256
TIMEOUT_S = 30.0
TOLERANCE_MS = 5
SEQUENCE = stereo_sequence(3, WIDTH, HEIGHT, seed=2)
MS = 1_000_000


class StereoStream:
    """Stereo frames with increasing stamps into one node; the right stamp may be jittered."""

    def __init__(self, player: FramePlayer, node: NodeProcess) -> None:
        self.player = player
        self.node = node
        self.next_index = 0

    def wait(self, condition, what: str) -> None:
        """Spin until ``condition()``; on timeout fail with the node's log."""
        try:
            self.player.wait_until(condition, TIMEOUT_S, what)
        except TimeoutError as err:
            pytest.fail(f"{err}; node log:\n{self.node.log()[-4000:]}")

    def send(
        self,
        right_jitter_ms: float = 0.0,
        images: list[np.ndarray] | None = None,
        infos: list | None = None,
    ) -> FrameRecord:
        index = self.next_index
        self.next_index += 1
        own_images, own_infos = sequence_frame_messages(SEQUENCE, "stereo", index)
        images, infos = images or own_images, infos or own_infos
        for info, source in zip(infos, own_infos):
            info.header = source.header  # stamps advance with the stream
        right_ns = stamp_to_ns(infos[0].header.stamp) + round(right_jitter_ms * MS)
        infos[1].header = header_of(Stamped(right_ns, RIGHT_FRAME))
        return self.player.publish_frame(index, images, infos)

    def send_and_wait(self, right_jitter_ms: float = 0.0, **frame) -> FrameRecord:
        record = self.send(right_jitter_ms, **frame)
        expected = 1 if record.index == 0 else 2
        self.wait(lambda: len(record.matches) >= expected, f"{expected} MatchArrays")
        if any(len(msg.inlier_mask) for _, msg in record.matches):
            self.wait(lambda: record.pose is not None, f"the pose of frame {record.index}")
        return record


@pytest.fixture(scope="module")
def stream(tmp_path_factory, probe_node) -> Iterator[StereoStream]:
    with node_with_player(
        tmp_path_factory.mktemp("stereo"),
        probe_node,
        "stereo",
        weights_path=RANDOM_WEIGHTS,
        sync_policy="approximate",
        sync_tolerance_s=TOLERANCE_MS / 1000,
        min_inliers=5,
    ) as (player, node):
        yield StereoStream(player, node)


def test_random_weights_are_announced_loudly(stream: StereoStream) -> None:
    stream.wait(lambda: "RANDOM WEIGHTS" in stream.node.log(), "the random-weights warning")
    assert "MEANINGLESS" in stream.node.log()


def test_jittered_pairs_give_stereo_and_temporal_matches_with_their_headers(
    stream: StereoStream,
) -> None:
    records = [stream.send_and_wait(jitter) for jitter in (0.0, 3.0, -TOLERANCE_MS + 1)]
    assert [len(r.matches) for r in records] == [1, 2, 2]
    for previous, record in zip([None, *records], records):
        by_mode = {msg.mode: msg for _, msg in record.matches}
        stereo = by_mode["stereo"]
        assert match_array_problems(stereo) == []
        assert (stamp_to_ns(stereo.reference_header.stamp), stereo.reference_header.frame_id) == (
            record.stamp_ns,
            LEFT_FRAME,
        )
        assert stereo.header.frame_id == RIGHT_FRAME
        assert abs(stamp_to_ns(stereo.header.stamp) - record.stamp_ns) <= TOLERANCE_MS * MS
        if previous is None:
            continue
        temporal = by_mode["sequential"]
        assert match_array_problems(temporal) == []
        assert stamp_to_ns(temporal.reference_header.stamp) == previous.stamp_ns
        assert stamp_to_ns(temporal.header.stamp) == record.stamp_ns
        assert temporal.header.frame_id == temporal.reference_header.frame_id == LEFT_FRAME
        assert stereo.inference_ms == pytest.approx(temporal.inference_ms)  # one shared forward
        _check_metric_pose(record, temporal)


def _check_metric_pose(record: FrameRecord, temporal) -> None:
    """Stamp and frame of the pose when one came; its mask and presence agree."""
    if record.pose is None:
        assert len(temporal.inlier_mask) == 0  # no pose: no inlier mask
        return
    pose = record.pose
    assert (stamp_to_ns(pose.header.stamp), pose.header.frame_id) == (record.stamp_ns, LEFT_FRAME)
    covariance = np.asarray(pose.pose.covariance).reshape(6, 6)
    assert np.all(np.diag(covariance) > 0) and np.all(np.diag(covariance) < 1e6)  # metric: known


def test_pairs_beyond_the_sync_tolerance_are_not_matched(stream: StereoStream) -> None:
    stream.send_and_wait()
    unsynced = stream.send(right_jitter_ms=3 * TOLERANCE_MS)
    after = stream.send_and_wait()
    assert unsynced.matches == []
    temporal = next(msg for _, msg in after.matches if msg.mode == "sequential")
    assert stamp_to_ns(temporal.reference_header.stamp) == after.stamp_ns - 2 * 33_333_333


def test_stereo_pair_of_different_sizes_is_rejected_and_the_node_goes_on(
    stream: StereoStream,
) -> None:
    _, infos = sequence_frame_messages(SEQUENCE, "stereo", 0)
    small = cv2.resize(SEQUENCE.frames[0].right, (WIDTH // 2, HEIGHT // 2))
    infos[1] = camera_info_from_matrices(
        SEQUENCE.K / 2, (WIDTH // 2, HEIGHT // 2), infos[1].header, SEQUENCE.projection_right / 2
    )
    infos[1].p[10] = 1.0
    stream.send(images=[SEQUENCE.frames[0].left, small], infos=infos)
    stream.wait(
        lambda: "left image is 320x256 but right is 160x128" in stream.node.log(),
        "the mismatched-size warning",
    )
    record = stream.send_and_wait()
    assert len(record.matches) == 2 and stream.node.process.poll() is None


def test_real_euroc_pair_is_matched_at_its_own_size(stream: StereoStream) -> None:
    pairs_file = DATA_DIR / "euroc_v101_micro_stereo" / "pairs_gt.json"
    if not pairs_file.is_file():
        pytest.skip(f"real stereo data not found at {pairs_file}")
    pair = read_pairs_gt_json(pairs_file).pairs[0]
    left, right, projection_left, projection_right = _rectified(pair)
    size = (left.shape[1], left.shape[0])
    _, infos = sequence_frame_messages(SEQUENCE, "stereo", 0)
    infos = [
        camera_info_from_matrices(projection_left[:, :3], size, infos[0].header, projection_left),
        camera_info_from_matrices(projection_right[:, :3], size, infos[1].header, projection_right),
    ]
    record = stream.send_and_wait(images=[left, right], infos=infos)
    stereo = next(msg for _, msg in record.matches if msg.mode == "stereo")
    assert (stereo.width, stereo.height) == (752, 480) and match_array_problems(stereo) == []
    temporal = next(msg for _, msg in record.matches if msg.mode == "sequential")
    assert (temporal.reference_width, temporal.width) == (WIDTH, 752)  # previous frame: synthetic


def _rectified(pair) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The EuRoC pair rectified as stereo_image_proc would publish it, with both P matrices."""
    left = cv2.imread(str(pair.image0), cv2.IMREAD_GRAYSCALE)
    right = cv2.imread(str(pair.image1), cv2.IMREAD_GRAYSCALE)
    size = (left.shape[1], left.shape[0])
    rotation, translation = pair.T_0to1[:3, :3], pair.T_0to1[:3, 3].reshape(3, 1)
    r1, r2, p1, p2, *_ = cv2.stereoRectify(
        pair.K0, pair.distortion0, pair.K1, pair.distortion1, size, rotation, translation, alpha=0
    )
    images = []
    for image, K, D, R, P in (
        (left, pair.K0, pair.distortion0, r1, p1),
        (right, pair.K1, pair.distortion1, r2, p2),
    ):
        maps = cv2.initUndistortRectifyMap(K, D, R, P, size, cv2.CV_32FC1)
        images.append(cv2.remap(image, *maps, cv2.INTER_LINEAR))
    return images[0], images[1], p1, p2
