"""rosbag2 files (sqlite3 or MCAP) through the pure-Python ``rosbags`` package; no ROS needed.

Reading yields the raw CDR bytes of each message with its topic, type and times, which the replay
tool publishes unchanged or decodes. Writing turns a EuRoC stereo folder into a bag with
``sensor_msgs/Image`` (mono8) and ``sensor_msgs/CameraInfo`` (plumb_bob, with the stereo
rectification R and P that ``cv2.stereoRectify`` gives), stamped with the EuRoC timestamps.

``rosbags`` is imported on first use (``pip install rosbags``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np

from edm_ros.data.calibration import (
    CameraCalibration,
    read_euroc_rig,
    read_euroc_stereo,
    stereo_extrinsic,
)
from edm_ros.data.images import read_grey
from edm_ros.errors import ConfigError, InputError

BagStorage = Literal["sqlite3", "mcap"]
IMAGE_TYPE = "sensor_msgs/msg/Image"
CAMERA_INFO_TYPE = "sensor_msgs/msg/CameraInfo"


@dataclass(frozen=True)
class BagMessage:
    """One recorded message.

    Attributes:
        topic: the recorded topic name.
        msgtype: ROS type, e.g. ``sensor_msgs/msg/Image``.
        log_time_ns: when it was recorded (the bag's timestamp), nanoseconds.
        raw: its CDR bytes, as they went over the wire.
    """

    topic: str
    msgtype: str
    log_time_ns: int
    raw: bytes


def _rosbags() -> Any:
    try:
        import rosbags.highlevel
        import rosbags.rosbag2
        import rosbags.typesys
    except ImportError as err:
        raise ConfigError(
            f"bag files need the rosbags package ({err}): pip install rosbags"
        ) from err
    return rosbags


def _typestore() -> Any:
    """Message definitions for (de)serialising; sensor_msgs are the same from Humble on."""
    typesys = _rosbags().typesys
    return typesys.get_typestore(typesys.Stores.ROS2_HUMBLE)


def bag_topics(path: str | Path) -> dict[str, str]:
    """Topics of a bag and their message types.

    Raises:
        InputError: not a rosbag2 folder or file.
    """
    with _open_reader(path) as reader:
        return {connection.topic: connection.msgtype for connection in reader.connections}


@contextmanager
def _open_reader(path: str | Path) -> Iterator[Any]:
    rosbags = _rosbags()
    try:
        reader = rosbags.highlevel.AnyReader([Path(path)], default_typestore=_typestore())
        reader.open()
    except (rosbags.highlevel.AnyReaderError, OSError) as err:
        raise InputError(f"{path}: not a readable rosbag2 (sqlite3 or MCAP) bag ({err})") from err
    try:
        yield reader
    finally:
        reader.close()


def read_bag(path: str | Path, topics: Sequence[str] | None = None) -> Iterator[BagMessage]:
    """The bag's messages in recording order.

    Args:
        path: the bag folder (with metadata.yaml) or a single .mcap/.db3 file.
        topics: only these topics; None = all.

    Yields:
        Each message with its raw CDR bytes.

    Raises:
        InputError: unreadable bag, or a requested topic missing.
    """
    with _open_reader(path) as reader:
        available = {connection.topic for connection in reader.connections}
        missing = sorted(set(topics or ()) - available)
        if missing:
            raise InputError(f"{path}: no topic {', '.join(missing)}; it has {sorted(available)}")
        chosen = [c for c in reader.connections if topics is None or c.topic in topics]
        for connection, log_time_ns, raw in reader.messages(connections=chosen):
            yield BagMessage(connection.topic, connection.msgtype, int(log_time_ns), bytes(raw))


def deserialize(message: BagMessage) -> Any:
    """Decode a message with rosbags (fields as in ROS 2 Python: ``header``, ``data`` ...)."""
    return _typestore().deserialize_cdr(message.raw, message.msgtype)


def _stamp(typestore: Any, stamp_ns: int) -> Any:
    Time = typestore.types["builtin_interfaces/msg/Time"]
    return Time(sec=stamp_ns // 1_000_000_000, nanosec=stamp_ns % 1_000_000_000)


def _camera_info(
    typestore: Any,
    camera: CameraCalibration,
    rectification: np.ndarray,
    projection: np.ndarray,
    header: Any,
) -> Any:
    types = typestore.types
    coefficients = np.zeros(5)
    coefficients[: len(camera.distortion)] = camera.distortion  # plumb_bob carries k3 too
    return types[CAMERA_INFO_TYPE](
        header=header,
        height=camera.height,
        width=camera.width,
        distortion_model="plumb_bob",
        d=coefficients,
        k=camera.K.reshape(-1),
        r=rectification.reshape(-1),
        p=projection.reshape(-1),
        binning_x=0,
        binning_y=0,
        roi=types["sensor_msgs/msg/RegionOfInterest"](
            x_offset=0, y_offset=0, height=0, width=0, do_rectify=False
        ),
    )


def euroc_to_bag(
    euroc_folder: str | Path,
    bag_path: str | Path,
    *,
    storage: BagStorage = "mcap",
    max_frames: int | None = None,
    namespaces: tuple[str, str] = ("/cam0", "/cam1"),
) -> list[int]:
    """Write a EuRoC stereo folder as a rosbag2 with images and camera infos.

    Topics ``<ns>/image_raw`` (mono8) and ``<ns>/camera_info`` per camera, header stamps and
    bag times = the EuRoC timestamps, frame ids ``cam0``/``cam1``.

    Args:
        euroc_folder: EuRoC folder (see :func:`edm_ros.data.calibration.read_euroc_stereo`).
        bag_path: the bag folder to create (must not exist).
        storage: "mcap" or "sqlite3".
        max_frames: write only the first this many stereo frames.
        namespaces: topic namespaces of the left and right camera.

    Returns:
        The timestamps written, nanoseconds.

    Raises:
        InputError: unreadable images or calibration; ConfigError: the bag path exists.
    """
    cameras = read_euroc_rig(euroc_folder)
    pairs = read_euroc_stereo(euroc_folder).pairs[:max_frames]
    typestore = _typestore()
    with _new_writer(Path(bag_path), storage) as writer:
        connections = [
            (
                writer.add_connection(f"{ns}/image_raw", IMAGE_TYPE, typestore=typestore),
                writer.add_connection(f"{ns}/camera_info", CAMERA_INFO_TYPE, typestore=typestore),
            )
            for ns in namespaces
        ]
        infos = _stereo_camera_infos(typestore, cameras)
        for pair in pairs:
            stamp_ns = int(pair.name)
            for side, image_path in enumerate((pair.image0, pair.image1)):
                image, info = _stamped_messages(typestore, image_path, infos[side], stamp_ns, side)
                image_connection, info_connection = connections[side]
                writer.write(image_connection, stamp_ns, typestore.serialize_cdr(image, IMAGE_TYPE))
                writer.write(
                    info_connection, stamp_ns, typestore.serialize_cdr(info, CAMERA_INFO_TYPE)
                )
    return [int(pair.name) for pair in pairs]


def _stereo_camera_infos(
    typestore: Any, cameras: tuple[CameraCalibration, CameraCalibration]
) -> list[Any]:
    """CameraInfo of both raw cameras, with the rectification R and P of cv2.stereoRectify."""
    extrinsic = stereo_extrinsic(cameras[0], cameras[1])
    rectify = cv2.stereoRectify(
        cameras[0].K,
        cameras[0].distortion,
        cameras[1].K,
        cameras[1].distortion,
        (cameras[0].width, cameras[0].height),
        extrinsic[:3, :3].copy(),
        extrinsic[:3, 3].reshape(3, 1).copy(),
        alpha=0,
    )
    header = typestore.types["std_msgs/msg/Header"](stamp=_stamp(typestore, 0), frame_id="")
    return [
        _camera_info(
            typestore, camera, np.asarray(rectify[side]), np.asarray(rectify[2 + side]), header
        )
        for side, camera in enumerate(cameras)
    ]


def _stamped_messages(
    typestore: Any, image_path: Path, info: Any, stamp_ns: int, side: int
) -> tuple[Any, Any]:
    """The mono8 Image of one file and a copy of ``info``, both with the frame's header."""
    grey = read_grey(image_path)
    types = typestore.types
    header = types["std_msgs/msg/Header"](stamp=_stamp(typestore, stamp_ns), frame_id=f"cam{side}")
    image = types[IMAGE_TYPE](
        header=header,
        height=grey.shape[0],
        width=grey.shape[1],
        encoding="mono8",
        is_bigendian=0,
        step=grey.shape[1],
        data=grey.reshape(-1),
    )
    return image, dataclasses.replace(info, header=header)


def _new_writer(path: Path, storage: BagStorage) -> Any:
    rosbag2 = _rosbags().rosbag2
    if storage not in ("mcap", "sqlite3"):
        raise ConfigError(f"storage must be 'mcap' or 'sqlite3', got {storage!r}")
    if path.exists():
        raise ConfigError(f"{path} exists; rosbag2 writes a new folder, choose another path")
    plugin = rosbag2.StoragePlugin.MCAP if storage == "mcap" else rosbag2.StoragePlugin.SQLITE3
    return rosbag2.Writer(path, version=9, storage_plugin=plugin)
