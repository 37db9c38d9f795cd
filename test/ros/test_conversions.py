"""edm_ros.ros.conversions: every image encoding (padded rows, big-endian), camera_info, outputs."""

from __future__ import annotations

import array
from dataclasses import replace

import cv2
import numpy as np
import pytest
from edm_ros.msg import MatchArray
from edm_ros.msg import RelativePose as RelativePoseMsg
from sensor_msgs.msg import Image

from edm_ros.errors import InputError
from edm_ros.geometry.pose import RelativePose
from edm_ros.pipeline import PipelineOutput, Stamped, TrackingState
from edm_ros.results import MatchResult
from edm_ros.ros.conversions import (
    camera_from_info,
    camera_info_from_matrices,
    grey_for_matcher,
    header_of,
    image_to_numpy,
    mono_frame_from_msgs,
    numpy_to_image,
    stereo_frame_from_msgs,
)
from edm_ros.ros.outputs import match_array_from_result, quaternion_from_rotation, relative_pose_msg

RNG = np.random.default_rng(7)
K = np.array([[200.0, 0.0, 31.5], [0.0, 210.0, 23.5], [0.0, 0.0, 1.0]])
HEADER = header_of(Stamped(1_700_000_000_123_456_789, "cam_optical"))

ENCODINGS = {
    "mono8": (np.uint8, 1),
    "mono16": (np.uint16, 1),
    "bgr8": (np.uint8, 3),
    "rgb8": (np.uint8, 3),
    "bgra8": (np.uint8, 4),
    "rgba8": (np.uint8, 4),
    "16UC1": (np.uint16, 1),
    "32FC1": (np.float32, 1),
    "64FC1": (np.float64, 1),
    "16SC1": (np.int16, 1),
    "8UC3": (np.uint8, 3),
    "bgr16": (np.uint16, 3),
    "bayer_rggb8": (np.uint8, 1),
}


def _random_image(dtype: type, channels: int, height: int = 48, width: int = 64) -> np.ndarray:
    shape = (height, width) if channels == 1 else (height, width, channels)
    if np.dtype(dtype).kind == "f":
        return RNG.random(shape).astype(dtype) * 7.0 - 2.0
    info = np.iinfo(dtype)
    return RNG.integers(info.min, info.max, shape, dtype=dtype, endpoint=True)


@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
@pytest.mark.parametrize("padding", [0, 13])
@pytest.mark.parametrize("big_endian", [False, True])
def test_image_round_trip_keeps_every_pixel(encoding: str, padding: int, big_endian: bool) -> None:
    array = _random_image(*ENCODINGS[encoding])
    msg = numpy_to_image(array, encoding, HEADER, row_padding=padding, big_endian=big_endian)
    assert msg.step == array.shape[1] * array.itemsize * array[0, 0].size + padding
    decoded = image_to_numpy(msg)
    assert decoded.dtype == array.dtype and decoded.dtype.isnative
    np.testing.assert_array_equal(decoded, array)


def test_decoding_reads_bytes_from_a_plain_message() -> None:
    msg = Image(height=32, width=33, encoding="mono16", step=70, is_bigendian=1)
    rows = np.arange(32 * 33, dtype=">u2").reshape(32, 33)
    padded = np.zeros((32, 70), np.uint8)
    padded[:, :66] = rows.view(np.uint8)
    msg.data = padded.tobytes()
    np.testing.assert_array_equal(image_to_numpy(msg), rows.astype(np.uint16))


def test_colour_to_grey_respects_the_channel_order() -> None:
    red = np.zeros((40, 40, 3), np.uint8)
    red[..., 0] = 255  # red in RGB order
    as_rgb = grey_for_matcher(red, "rgb8")
    as_bgr = grey_for_matcher(red, "bgr8")
    assert as_rgb.dtype == np.uint8 and as_rgb.shape == (40, 40)
    assert as_rgb[0, 0] == 76 and as_bgr[0, 0] == 29  # 0.299 * 255 vs 0.114 * 255
    rgba = np.dstack([red, np.full((40, 40), 255, np.uint8)])
    assert grey_for_matcher(rgba, "rgba8")[0, 0] == 76


def test_deep_images_are_stretched_to_the_full_grey_range() -> None:
    twelve_bit = np.linspace(100, 4000, 48 * 64).reshape(48, 64).astype(np.uint16)
    grey = grey_for_matcher(twelve_bit, "mono16")
    assert (grey.min(), grey.max()) == (0, 255)
    assert np.all(np.diff(grey.reshape(-1).astype(int)) >= 0)  # monotonic mapping
    flat = grey_for_matcher(np.full((40, 40), 3.5, np.float32), "32FC1")
    assert np.all(flat == 0)


def test_bayer_is_demosaiced_to_grey() -> None:
    bayer = _random_image(np.uint8, 1)
    expected = cv2.cvtColor(bayer, cv2.COLOR_BayerBG2GRAY)
    np.testing.assert_array_equal(grey_for_matcher(bayer, "bayer_rggb8"), expected)


def test_nan_image_is_rejected_as_not_an_intensity_image() -> None:
    depth = np.ones((40, 40), np.float32)
    depth[3:5, 7] = np.nan
    with pytest.raises(InputError, match=r"2 NaN/infinite pixels .* depth map"):
        grey_for_matcher(depth, "32FC1")


def test_two_channel_images_are_rejected() -> None:
    with pytest.raises(InputError, match="8UC2 has 2 channels"):
        grey_for_matcher(np.zeros((40, 40, 2), np.uint8), "8UC2")


@pytest.mark.parametrize(("width", "height"), [(0, 0), (1, 1), (640, 1), (31, 480)])
def test_tiny_images_are_rejected(width: int, height: int) -> None:
    msg = Image(height=height, width=width, encoding="mono8", step=width)
    msg.data = bytes(width * height)
    with pytest.raises(InputError, match=f"{width}x{height} pixels; the matcher needs at least 32"):
        image_to_numpy(msg)


def test_short_data_or_step_is_rejected_with_the_sizes() -> None:
    msg = Image(height=40, width=40, encoding="rgb8", step=100)
    msg.data = bytes(100 * 40)
    with pytest.raises(InputError, match="step 100 and 4000 data bytes cannot hold 40 rows of 120"):
        image_to_numpy(msg)


def test_unknown_encoding_lists_the_supported_ones() -> None:
    msg = Image(height=40, width=40, encoding="yuv422", step=80)
    with pytest.raises(InputError, match="'yuv422' is not supported; expected one of mono8"):
        image_to_numpy(msg)


def test_numpy_to_image_rejects_a_dtype_that_does_not_fit() -> None:
    with pytest.raises(InputError, match="mono16 needs uint16 with 1 channel"):
        numpy_to_image(np.zeros((40, 40), np.uint8), "mono16")


def test_camera_from_info_uses_p_for_rectified_and_k_d_for_raw_images() -> None:
    projection = np.hstack([K * [[1.1], [1.1], [1.0]], np.zeros((3, 1))])
    info = camera_info_from_matrices(K, (64, 48), HEADER, projection, np.array([0.1, 0, 0, 0, 0]))
    rectified = camera_from_info(info, (64, 48), rectified=True, topic="/cam/camera_info")
    raw = camera_from_info(info, (64, 48), rectified=False, topic="/cam/camera_info")
    np.testing.assert_allclose(rectified.K, projection[:, :3])
    assert rectified.distortion.size == 0
    np.testing.assert_allclose(raw.K, K)
    assert raw.distortion_model == "plumb_bob" and raw.distortion[0] == pytest.approx(0.1)


def test_zero_camera_info_names_the_topic() -> None:
    info = camera_info_from_matrices(K, (64, 48), HEADER)
    info.k = np.zeros(9)
    with pytest.raises(InputError, match="/cam/camera_info: camera_info K: values are all zero"):
        camera_from_info(info, (64, 48), rectified=False, topic="/cam/camera_info")


def test_camera_info_of_another_size_is_rejected() -> None:
    info = camera_info_from_matrices(K, (640, 480), HEADER)
    with pytest.raises(InputError, match="camera_info is 640x480 but the image is 64x48"):
        camera_from_info(info, (64, 48), rectified=True, topic="/cam/camera_info")


def test_mono_frame_keeps_matching_without_a_usable_camera() -> None:
    image = numpy_to_image(_random_image(np.uint8, 1), "mono8", HEADER)
    info = camera_info_from_matrices(K, (64, 48), HEADER)
    info.p = np.zeros(12)
    frame = mono_frame_from_msgs(image, info, rectified=True, info_topic="/cam/camera_info")
    assert frame.camera is None and "camera_info P" in frame.camera_problem
    assert frame.stamp == Stamped(1_700_000_000_123_456_789, "cam_optical")
    assert frame.image.shape == (48, 64) and frame.image.dtype == np.uint8


def test_stereo_frame_without_a_baseline_has_no_projections() -> None:
    images = [numpy_to_image(_random_image(np.uint8, 1), "mono8", HEADER) for _ in range(2)]
    info = camera_info_from_matrices(K, (64, 48), HEADER)  # right P with Tx = 0: no baseline
    frame = stereo_frame_from_msgs(images[0], info, images[1], info, ("/l/info", "/r/info"))
    assert frame.projection_right is None
    assert frame.right.camera_problem.startswith("/r/info: projection_right")
    right_p = np.hstack([K, [[-200.0 * 0.1], [0.0], [0.0]]])
    right_info = camera_info_from_matrices(K, (64, 48), HEADER, right_p)
    good = stereo_frame_from_msgs(images[0], info, images[1], right_info, ("/l/info", "/r/info"))
    np.testing.assert_allclose(good.projection_right, right_p)


def test_header_round_trip_is_exact() -> None:
    stamp = Stamped(1_700_000_000_999_999_999, "x")
    header = header_of(stamp)
    assert (header.stamp.sec, header.stamp.nanosec, header.frame_id) == (
        1_700_000_000,
        999_999_999,
        "x",
    )


@pytest.mark.parametrize("with_mask", [False, True])
def test_match_array_fields(with_mask: bool) -> None:
    count = 5
    result = MatchResult(
        RNG.random((count, 2), np.float32) * 60,
        RNG.random((count, 2), np.float32) * 30,
        np.linspace(1, 0.2, count, dtype=np.float32),
        np.full(count, 0.9, np.float32),
        (64, 48),
        (32, 24),
        12.5,
    )
    mask = np.array([1, 0, 1, 1, 0], bool) if with_mask else None
    reference, current = Stamped(10, "left"), Stamped(10, "right")
    msg = match_array_from_result(result, "stereo", reference, current, mask)
    assert msg.header == header_of(current) and msg.reference_header == header_of(reference)
    assert (msg.reference_width, msg.reference_height, msg.width, msg.height) == (64, 48, 32, 24)
    np.testing.assert_array_equal(np.asarray(msg.keypoints0).reshape(-1, 2), result.keypoints0)
    np.testing.assert_array_equal(np.asarray(msg.keypoints1).reshape(-1, 2), result.keypoints1)
    np.testing.assert_array_equal(msg.confidence, result.confidence)
    np.testing.assert_array_equal(msg.fine_confidence, result.fine_confidence)
    assert list(msg.inlier_mask) == ([1, 0, 1, 1, 0] if with_mask else [])
    assert msg.mode == "stereo" and msg.inference_ms == pytest.approx(12.5)


def test_match_array_sequences_pass_the_field_checks_of_humble() -> None:
    """Humble always checks field types (Jazzy/Kilted with ROS_PYTHON_CHECK_FIELDS=1)."""
    count = 3000
    result = MatchResult(
        RNG.random((count, 2), np.float32) * 60,
        RNG.random((count, 2), np.float32) * 30,
        RNG.random(count, np.float32),
        RNG.random(count, np.float32),
        (64, 48),
        (32, 24),
        1.0,
    )
    msg = match_array_from_result(
        result, "sequential", Stamped(1, "a"), Stamped(2, "a"), RNG.random(count) > 0.5
    )
    checked = MatchArray(check_fields=True)
    for name in ("keypoints0", "keypoints1", "confidence", "fine_confidence", "inlier_mask"):
        setattr(checked, name, getattr(msg, name))  # raises AssertionError for a numpy array
        assert type(getattr(checked, name)) is array.array
    with pytest.raises(AssertionError):
        checked.confidence = np.zeros(3, np.float32)  # what the check rejects
    image = numpy_to_image(np.zeros((48, 64), np.uint8), "mono8")
    Image(check_fields=True).data = image.data


@pytest.mark.parametrize("rotation_deg", [(0, 0, 0), (10, -20, 5), (179, 0, 0), (0, 0, -179.9)])
def test_quaternion_matches_the_rotation(rotation_deg: tuple[float, float, float]) -> None:
    rotation = cv2.Rodrigues(np.radians(np.array(rotation_deg, np.float64)))[0]
    x, y, z, w = quaternion_from_rotation(rotation)
    assert w >= 0 and np.hypot(np.hypot(x, y), np.hypot(z, w)) == pytest.approx(1.0)
    rebuilt = np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )
    np.testing.assert_allclose(rebuilt, rotation, atol=1e-9)


def test_relative_pose_message_carries_both_headers_pose_state_and_covariance() -> None:
    rotation = cv2.Rodrigues(np.array([0.0, 0.1, 0.0]))[0]
    covariance = np.diag([1e-4, 2e-4, 3e-4, 1e-6, 2e-6, 3e-6])
    pose = RelativePose(
        True, "", rotation, np.array([0.6, 0.0, 0.8]), True, np.ones(3, bool), covariance
    )
    output = PipelineOutput(
        (),
        pose,
        Stamped(5, "left_optical"),
        Stamped(9, "left_optical"),
        TrackingState.OK,
        "",
        "",
        4,
        False,
        None,
    )
    msg = relative_pose_msg(output)
    assert msg.header == header_of(Stamped(9, "left_optical"))
    assert msg.reference_header == header_of(Stamped(5, "left_optical"))
    position = msg.pose.pose.position
    assert (position.x, position.y, position.z) == (0.6, 0.0, 0.8)
    assert msg.pose.pose.orientation.y == pytest.approx(np.sin(0.05))
    np.testing.assert_array_equal(np.asarray(msg.pose.covariance).reshape(6, 6), covariance)
    assert msg.metric and msg.state == RelativePoseMsg.STATE_OK and not msg.keyframe
    assert (msg.num_matches, msg.num_inliers) == (4, 3)
    failed = RelativePose.failure("12 inliers", 4)
    lost_output = replace(
        output, pose=failed, state=TrackingState.LOST, reason="no pose: 12 inliers"
    )
    lost = relative_pose_msg(lost_output)
    assert lost.state == RelativePoseMsg.STATE_LOST and lost.reason == "no pose: 12 inliers"
    assert lost.pose.pose.orientation.w == 1.0 and lost.num_inliers == 0
    assert np.all(np.diag(np.asarray(lost.pose.covariance).reshape(6, 6)) == 1e6)
