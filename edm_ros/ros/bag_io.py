"""rosbag2 recordings into ROS: publish them with their timing, or decode them into pipeline frames.

:func:`play` publishes each message's recorded bytes unchanged on its topic; :func:`bag_frames`
pairs a bag's images with their camera_info like the node does (:class:`StampSynchronizer`,
:meth:`InputSpec.frame_from_msgs`), rectifying raw stereo images first as image_proc would.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import rclpy
from rclpy.duration import Duration
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from rclpy.serialization import deserialize_message
from sensor_msgs.msg import CameraInfo, Image

from edm_ros.data.bags import CAMERA_INFO_TYPE, IMAGE_TYPE, BagMessage, bag_topics, read_bag
from edm_ros.errors import ConfigError, EDMError, InputError
from edm_ros.pipeline import MonoFrame, StereoFrame
from edm_ros.ros.conversions import grey_for_matcher, image_to_numpy, numpy_to_image, stamp_to_ns
from edm_ros.ros.inputs import InputSpec
from edm_ros.ros.shutdown import shutdown_ros
from edm_ros.ros.sync import StampSynchronizer

_SYNC_QUEUE_SIZE = 10  # the node's sync_queue_size default


def message_class(msgtype: str) -> Any:
    """``sensor_msgs/msg/Image`` -> the rclpy message class ``sensor_msgs.msg.Image``.

    Raises:
        ConfigError: When the message package is not installed.
    """
    package, _, name = msgtype.split("/")
    try:
        return getattr(importlib.import_module(f"{package}.msg"), name)
    except (ImportError, AttributeError) as err:
        raise ConfigError(
            f"message type {msgtype}: not importable ({err}); install its ROS 2 package"
        ) from err


def play(
    bag: str | Path,
    *,
    topics: Sequence[str] | None = None,
    rate: float = 1.0,
    remaps: dict[str, str] | None = None,
    reliable: bool = True,
    wait_for_subscribers: int = 0,
    wait_timeout_s: float = 30.0,
) -> int:
    """Publish a bag's messages into the ROS graph with the recorded timing.

    Args:
        bag: the rosbag2 folder or file.
        topics: publish only these recorded topics; None = all.
        rate: playback speed factor (2 = twice as fast).
        remaps: recorded topic -> published topic.
        reliable: reliable QoS (depth 10); False = sensor_data (best effort, depth 5).
        wait_for_subscribers: before the first message, wait until every publisher has this
            many subscribers (instead of guessing a discovery delay).
        wait_timeout_s: give up waiting after this long.

    Returns:
        The number of messages published.

    Raises:
        EDMError: bad bag or options, or subscribers that did not appear in time.
    """
    if rate <= 0:
        raise ConfigError(f"--rate must be positive, got {rate}")
    types = {t: m for t, m in bag_topics(bag).items() if topics is None or t in topics}
    qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    rclpy.init(args=[])  # the caller's argparse owns sys.argv
    node = rclpy.create_node("edm_bag_player")
    try:
        publishers = {
            topic: node.create_publisher(
                message_class(msgtype),
                (remaps or {}).get(topic, topic),
                qos if reliable else qos_profile_sensor_data,
            )
            for topic, msgtype in types.items()
        }
        _wait_for_subscribers(node, publishers, wait_for_subscribers, wait_timeout_s)
        count = _publish_timed(read_bag(bag, list(types)), publishers, rate)
        if reliable:  # let the last messages arrive before the publishers go away
            for publisher in publishers.values():
                publisher.wait_for_all_acked(Duration(seconds=wait_timeout_s))
        return count
    finally:
        node.destroy_node()
        shutdown_ros()


def _wait_for_subscribers(
    node: Node, publishers: dict[str, Any], count: int, timeout_s: float
) -> None:
    deadline = time.monotonic() + timeout_s
    missing = list(publishers)
    while count > 0 and time.monotonic() < deadline:
        missing = [t for t, p in publishers.items() if p.get_subscription_count() < count]
        if not missing:
            return
        rclpy.spin_once(node, timeout_sec=0.05)
    if count > 0:
        raise EDMError(
            f"waited {timeout_s:.0f} s for {count} subscriber(s) on {', '.join(missing)}; "
            "start the consumer first, check ROS_DOMAIN_ID, or drop --wait-for-subscribers"
        )


def _publish_timed(messages: Iterator[BagMessage], publishers: dict[str, Any], rate: float) -> int:
    start = time.monotonic()
    first_ns = None
    count = 0
    for message in messages:
        first_ns = message.log_time_ns if first_ns is None else first_ns
        due = start + (message.log_time_ns - first_ns) / 1e9 / rate
        # Sleeping reproduces the recorded timing; it is the purpose of play, not a synchronisation.
        time.sleep(max(0.0, due - time.monotonic()))
        publishers[message.topic].publish(message.raw)
        count += 1
    return count


def bag_frames(
    bag: str | Path, spec: InputSpec, *, rectified: bool
) -> Iterator[MonoFrame | StereoFrame]:
    """The pipeline frames of a bag, in recording order.

    Images and camera_info are paired by identical stamps, as the node's exact sync policy does.

    Args:
        bag: the rosbag2 folder or file.
        spec: Which image and camera_info topics to read, and the mode.
        rectified: The images are rectified already. Raw stereo images are rectified with their
            camera_info's K, D, R and P first (image_proc's ``image_rect``); raw sequential
            images are undistorted by the pose estimation instead.

    Raises:
        InputError: A topic is missing from the bag or holds another message type.
    """
    available = bag_topics(bag)
    for topic, msg_type in zip(spec.topics, spec.message_types):
        expected = {Image: IMAGE_TYPE, CameraInfo: CAMERA_INFO_TYPE}[msg_type]
        if available.get(topic) != expected:
            found = available.get(topic, "not in the bag")
            raise InputError(f"{topic}: {found}, expected {expected}")
    groups: list[tuple[Any, ...]] = []
    synchronizer = StampSynchronizer(
        len(spec.topics), _SYNC_QUEUE_SIZE, "exact", 0, lambda *msgs: groups.append(msgs)
    )
    index_of = {topic: index for index, topic in enumerate(spec.topics)}
    info_topics = [camera.info for camera in spec.cameras]
    rectifier = _Rectifier()
    for message in read_bag(bag, list(spec.topics)):
        msg: Any = deserialize_message(message.raw, spec.message_types[index_of[message.topic]])
        synchronizer.add(index_of[message.topic], msg, stamp_to_ns(msg.header.stamp))
        for msgs in groups:
            if spec.mode == "stereo" and not rectified:
                msgs = tuple(
                    part
                    for image, info in spec.per_camera(msgs)
                    for part in (rectifier.rectify(image, info), info)
                )
            yield spec.frame_from_msgs(
                msgs, info_topics, rectified=rectified or spec.mode == "stereo"
            )
        groups.clear()


class _Rectifier:
    """Raw image -> rectified image with the maps of its camera_info (cached per calibration)."""

    def __init__(self) -> None:
        self._maps: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}

    def rectify(self, image: Image, info: CameraInfo) -> Image:
        """The image remapped to the rectified camera ``P[:3, :3]`` (mono8, same header)."""
        grey = grey_for_matcher(image_to_numpy(image), image.encoding)
        size = (grey.shape[1], grey.shape[0])
        key = (tuple(info.k), tuple(info.d), tuple(info.r), tuple(info.p), size)
        if key not in self._maps:
            matrices = (np.reshape(info.k, (3, 3)), np.asarray(info.d), np.reshape(info.r, (3, 3)))
            self._maps[key] = cv2.initUndistortRectifyMap(
                *matrices, np.reshape(info.p, (3, 4)), size, cv2.CV_32FC1
            )
        rectified = cv2.remap(grey, *self._maps[key], cv2.INTER_LINEAR)
        return numpy_to_image(rectified, "mono8", image.header)
