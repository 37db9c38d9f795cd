"""ROS messages <-> numpy: Image and CameraInfo in, frames for the pipeline, stamps and sequences.

The result messages (MatchArray, RelativePose, Odometry, TF) are built in :mod:`.outputs`.

Images are decoded with the real ROS 2 ``cv_bridge`` when it is installed and with the numpy
decoder below otherwise (PyPI has no ROS 2 cv_bridge; its ``cv-bridge`` package is a broken ROS 1
port, so an importable ``cv_bridge`` is used only when the ament index lists it). Both honour
``step`` (padded rows); big-endian payloads always go through numpy (cv_bridge's byte swap calls
an API NumPy 2 removed). The matcher then gets one grey uint8 image (:func:`grey_for_matcher`).
"""

from __future__ import annotations

import array
import functools
from dataclasses import replace
from typing import Any

import cv2
import numpy as np
from builtin_interfaces.msg import Time
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header

from edm_ros.errors import EDMError, InputError
from edm_ros.geometry.camera import CameraModel
from edm_ros.geometry.stereo import stereo_baseline_m
from edm_ros.pipeline import MonoFrame, Stamped, StereoFrame

#: Smallest image side the node accepts, pixels (one 1/32 cell of the network).
MIN_IMAGE_SIDE_PX = 32
_DTYPES = {
    "8U": np.uint8,
    "8S": np.int8,
    "16U": np.uint16,
    "16S": np.int16,
    "32S": np.int32,
    "32F": np.float32,
    "64F": np.float64,
}
_NAMED_ENCODINGS: dict[str, tuple[type, int]] = {
    "mono8": (np.uint8, 1),
    "mono16": (np.uint16, 1),
    "rgb8": (np.uint8, 3),
    "bgr8": (np.uint8, 3),
    "rgba8": (np.uint8, 4),
    "bgra8": (np.uint8, 4),
    "rgb16": (np.uint16, 3),
    "bgr16": (np.uint16, 3),
    "rgba16": (np.uint16, 4),
    "bgra16": (np.uint16, 4),
}
# ROS bayer_<pattern> names the top-left 2x2 block; OpenCV names the second row's (cv_bridge's map).
_BAYER_TO_GREY = {
    "rggb": cv2.COLOR_BayerBG2GRAY,
    "bggr": cv2.COLOR_BayerRG2GRAY,
    "gbrg": cv2.COLOR_BayerGR2GRAY,
    "grbg": cv2.COLOR_BayerGB2GRAY,
}


def encoding_layout(encoding: str) -> tuple[np.dtype, int]:
    """The element type and channel count of a ``sensor_msgs/Image`` encoding.

    Raises:
        InputError: For encodings without a fixed layout here (e.g. ``yuv422``, compressed).
    """
    if encoding in _NAMED_ENCODINGS:
        dtype, channels = _NAMED_ENCODINGS[encoding]
        return np.dtype(dtype), channels
    if encoding.startswith("bayer_") and encoding[6:10] in _BAYER_TO_GREY:
        return np.dtype(np.uint16 if encoding.endswith("16") else np.uint8), 1
    depth, _, count = encoding.partition("C")
    if depth in _DTYPES and count in ("1", "2", "3", "4"):
        return np.dtype(_DTYPES[depth]), int(count)
    supported = ", ".join([*_NAMED_ENCODINGS, "bayer_*8/16", "8UC1..64FC4"])
    raise InputError(f"image encoding {encoding!r} is not supported; expected one of {supported}")


def image_to_numpy(msg: Image) -> np.ndarray:
    """Decode a ``sensor_msgs/Image`` into an array in native byte order.

    Args:
        msg: The image; rows may be padded (``step`` > width * pixel size); any endianness.

    Returns:
        [H, W] or [H, W, C] array of the encoding's dtype (a copy, independent of ``msg``).

    Raises:
        InputError: Unknown encoding, empty or tiny image, or ``step``/``data`` too short.
    """
    dtype, channels = encoding_layout(msg.encoding)
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height < MIN_IMAGE_SIDE_PX or width < MIN_IMAGE_SIDE_PX:
        raise InputError(
            f"image is {width}x{height} pixels; the matcher needs at least "
            f"{MIN_IMAGE_SIDE_PX}x{MIN_IMAGE_SIDE_PX}"
        )
    row_bytes = width * channels * dtype.itemsize
    if step < row_bytes or len(msg.data) < step * height:
        raise InputError(
            f"{msg.encoding} image {width}x{height}: step {step} and {len(msg.data)} data bytes "
            f"cannot hold {height} rows of {row_bytes} bytes; the publisher filled it wrongly"
        )
    bridge = _ros_cv_bridge()
    if bridge is not None and not msg.is_bigendian:
        return np.array(bridge.imgmsg_to_cv2(msg, "passthrough"))
    raw = np.frombuffer(msg.data, dtype=np.uint8, count=step * height).reshape(height, step)
    pixels = raw[:, :row_bytes].copy().view(dtype.newbyteorder(">" if msg.is_bigendian else "<"))
    pixels = pixels.astype(dtype.newbyteorder("="), copy=False)
    return pixels.reshape(height, width, channels) if channels > 1 else pixels


def numpy_to_image(
    array: np.ndarray,
    encoding: str,
    header: Header | None = None,
    *,
    row_padding: int = 0,
    big_endian: bool = False,
) -> Image:
    """Encode an array as a ``sensor_msgs/Image``.

    Args:
        array: [H, W] or [H, W, C] matching ``encoding``'s dtype and channels.
        encoding: A ``sensor_msgs/Image`` encoding, e.g. ``mono8``, ``bgr8``, ``32FC1``.
        header: Stamp and frame to copy; an empty header when None.
        row_padding: Extra bytes after each row (``step`` = row bytes + padding).
        big_endian: Write multi-byte elements big-endian and set ``is_bigendian``.

    Raises:
        InputError: When the array's dtype or channels do not fit ``encoding``.
    """
    dtype, channels = encoding_layout(encoding)
    array = np.asarray(array)
    got_channels = 1 if array.ndim == 2 else (array.shape[2] if array.ndim == 3 else -1)
    if array.dtype != dtype or got_channels != channels:
        raise InputError(
            f"{encoding} needs {dtype} with {channels} channel(s), got {array.dtype} "
            f"with shape {array.shape}"
        )
    height, width = array.shape[:2]
    rows = array.astype(dtype.newbyteorder(">" if big_endian else "<")).reshape(height, -1)
    rows = rows.view(np.uint8)
    padded = np.zeros((height, rows.shape[1] + row_padding), np.uint8)
    padded[:, : rows.shape[1]] = rows
    msg = Image(height=height, width=width, encoding=encoding, step=padded.shape[1])
    msg.is_bigendian = int(big_endian)
    msg.data = uint8_sequence(padded)
    if header is not None:
        msg.header = header
    return msg


def grey_for_matcher(pixels: np.ndarray, encoding: str) -> np.ndarray:
    """The grey uint8 image the matcher runs on.

    8-bit colour is weighted to grey (channel order from the encoding; ``8UC3`` counts as BGR),
    Bayer is demosaiced to grey, and every other depth is scaled linearly so that its finite
    minimum and maximum become 0 and 255 (16-bit sensors rarely use the full range).

    Args:
        pixels: [H, W] or [H, W, C] array from :func:`image_to_numpy`.
        encoding: The encoding it was decoded from.

    Returns:
        [H, W] uint8.

    Raises:
        InputError: For 2-channel images and for images holding NaN or infinity (depth maps).
    """
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    if encoding.startswith("bayer_"):
        code = _BAYER_TO_GREY[encoding[6:10]]
        pixels, channels = cv2.cvtColor(pixels, code), 1
    if channels == 2:
        raise InputError(f"{encoding} has 2 channels; expected grey, colour or Bayer images")
    if pixels.dtype.kind == "f" and not np.all(np.isfinite(pixels)):
        bad = int(np.count_nonzero(~np.isfinite(pixels)))
        raise InputError(
            f"{encoding} image has {bad} NaN/infinite pixels (a depth map?); EDM matches "
            "intensity images: mono8, mono16, bgr8, rgb8, ..."
        )
    if channels > 1:
        rgb_first = encoding.startswith("rgb")
        code = {
            3: cv2.COLOR_RGB2GRAY if rgb_first else cv2.COLOR_BGR2GRAY,
            4: cv2.COLOR_RGBA2GRAY if rgb_first else cv2.COLOR_BGRA2GRAY,
        }[channels]
        as_float = pixels if pixels.dtype == np.uint8 else pixels.astype(np.float32)
        pixels = cv2.cvtColor(as_float, code)
    if pixels.dtype == np.uint8:
        return np.ascontiguousarray(pixels)
    values = pixels.astype(np.float64)
    low, high = float(values.min()), float(values.max())
    scale = 255.0 / (high - low) if high > low else 0.0
    return np.round((values - low) * scale).astype(np.uint8)


def camera_from_info(
    info: CameraInfo, image_size: tuple[int, int], *, rectified: bool, topic: str
) -> CameraModel:
    """The camera model of a ``sensor_msgs/CameraInfo``.

    Args:
        info: The message.
        image_size: (width, height) of the image it came with, pixels.
        rectified: True for rectified images (P[:3, :3], no distortion); False for raw images
            (K and D with ``distortion_model``).
        topic: Its topic, for the error message.

    Raises:
        InputError: For an uncalibrated (all-zero), non-finite or malformed camera_info, or one
            whose size differs from the image's.
    """
    info_size = (int(info.width), int(info.height))
    if info_size != image_size:
        raise InputError(
            f"{topic}: camera_info is {info_size[0]}x{info_size[1]} but the image is "
            f"{image_size[0]}x{image_size[1]}; publish the calibration of this image size"
        )
    try:
        return CameraModel.from_camera_info(
            info.k,
            info.d,
            info.distortion_model,
            info_size[0],
            info_size[1],
            P=info.p,
            rectified=rectified,
        )
    except EDMError as err:
        raise InputError(f"{topic}: {err}") from err


def camera_info_from_matrices(
    K: np.ndarray,
    size: tuple[int, int],
    header: Header,
    projection: np.ndarray | None = None,
    distortion: np.ndarray | None = None,
    distortion_model: str = "plumb_bob",
) -> CameraInfo:
    """A ``sensor_msgs/CameraInfo`` for a camera (players, tests, tools).

    Args:
        K: [3, 3] intrinsics, pixels.
        size: (width, height) pixels.
        header: Stamp and optical frame (those of the image it goes with).
        projection: [3, 4] P; ``[K | 0]`` when None (a left or monocular rectified camera).
        distortion: D coefficients; five zeros when None.
        distortion_model: CameraInfo distortion model name.
    """
    intrinsics = np.asarray(K, dtype=np.float64).reshape(3, 3)
    if projection is None:
        projection = np.hstack([intrinsics, np.zeros((3, 1))])
    info = CameraInfo(header=header, width=int(size[0]), height=int(size[1]))
    info.distortion_model = distortion_model
    info.d = [float(v) for v in (np.zeros(5) if distortion is None else distortion)]
    info.k = intrinsics.reshape(9)
    info.r = np.eye(3).reshape(9)
    info.p = np.asarray(projection, dtype=np.float64).reshape(12)
    return info


def mono_frame_from_msgs(
    image: Image, info: CameraInfo, *, rectified: bool, info_topic: str
) -> MonoFrame:
    """A pipeline frame from an image and its camera_info.

    A camera_info that cannot be used leaves ``camera`` None with the reason in
    ``camera_problem``: the frame is still matched, only no pose comes out.

    Raises:
        InputError: When the image itself cannot be used (see :func:`image_to_numpy` and
            :func:`grey_for_matcher`).
    """
    grey = grey_for_matcher(image_to_numpy(image), image.encoding)
    stamp = Stamped(stamp_to_ns(image.header.stamp), image.header.frame_id)
    try:
        camera = camera_from_info(
            info, (grey.shape[1], grey.shape[0]), rectified=rectified, topic=info_topic
        )
    except InputError as err:
        return MonoFrame(grey, stamp, None, str(err))
    return MonoFrame(grey, stamp, camera)


def stereo_frame_from_msgs(
    left: Image,
    left_info: CameraInfo,
    right: Image,
    right_info: CameraInfo,
    info_topics: tuple[str, str],
) -> StereoFrame:
    """A pipeline stereo frame from rectified left/right images and their camera_info.

    Args:
        left: Rectified left image.
        left_info: Its camera_info (P gives the rectified intrinsics).
        right: Rectified right image.
        right_info: Its camera_info (P[0, 3] = -fx * baseline).
        info_topics: (left, right) camera_info topic names, for messages.

    Raises:
        InputError: When an image cannot be used.
    """
    left_frame = mono_frame_from_msgs(left, left_info, rectified=True, info_topic=info_topics[0])
    right_frame = mono_frame_from_msgs(right, right_info, rectified=True, info_topic=info_topics[1])
    if left_frame.camera is None or right_frame.camera is None:
        return StereoFrame(left_frame, right_frame, None, None)
    projection_right = projection_matrix(right_info)
    try:
        stereo_baseline_m(projection_right)
    except EDMError as err:
        problem = f"{info_topics[1]}: {err}"
        return StereoFrame(left_frame, replace(right_frame, camera_problem=problem), None, None)
    return StereoFrame(left_frame, right_frame, projection_matrix(left_info), projection_right)


def projection_matrix(info: CameraInfo) -> np.ndarray:
    """CameraInfo P as a [3, 4] float64 matrix (right camera: P[0, 3] = -fx * baseline_m)."""
    return np.asarray(info.p, dtype=np.float64).reshape(3, 4)


def stamp_to_ns(stamp: Time) -> int:
    """A ``builtin_interfaces/Time`` as integer nanoseconds."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def header_of(stamped: Stamped) -> Header:
    """The ``std_msgs/Header`` of a pipeline stamp (lossless round trip of the input header)."""
    seconds, nanoseconds = divmod(stamped.stamp_ns, 1_000_000_000)
    return Header(stamp=Time(sec=seconds, nanosec=nanoseconds), frame_id=stamped.frame_id)


def float32_sequence(values: np.ndarray) -> array.array:
    """A ``float32[]`` field value that every distro's generated code accepts, in one copy.

    Humble's message classes (and Jazzy/Kilted's with ``ROS_PYTHON_CHECK_FIELDS=1``) reject numpy
    arrays for sequence fields; an ``array.array('f')`` is taken as it is.

    Args:
        values: Any shape (flattened in C order), converted to float32.
    """
    sequence = array.array("f")
    sequence.frombytes(np.ascontiguousarray(values, np.float32).tobytes())
    return sequence


def uint8_sequence(values: np.ndarray) -> array.array:
    """A ``uint8[]`` field value every distro accepts (``array.array('B')``), in one copy.

    Args:
        values: Any shape (flattened in C order); bools become 0/1.
    """
    sequence = array.array("B")
    sequence.frombytes(np.ascontiguousarray(values, np.uint8).tobytes())
    return sequence


@functools.cache
def _ros_cv_bridge() -> Any | None:
    """The real ROS 2 CvBridge when the ament index lists cv_bridge; else None (numpy decoder)."""
    try:
        from ament_index_python.packages import PackageNotFoundError, get_package_prefix

        get_package_prefix("cv_bridge")
    except (ImportError, PackageNotFoundError, OSError):  # OSError: AMENT_PREFIX_PATH unset
        return None
    try:
        from cv_bridge import CvBridge
    except ImportError:
        return None
    return CvBridge()
