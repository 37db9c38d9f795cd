"""Which topics a front end reads in each mode, and how one synchronised group becomes a frame.

The node, the synthetic player and ``edm-bag match`` all use :class:`InputSpec`, so the topic
layout of each mode and the conversion of its messages to a pipeline frame are written once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sensor_msgs.msg import CameraInfo, Image

from edm_ros.errors import ConfigError
from edm_ros.pipeline import MonoFrame, PairMode, StereoFrame
from edm_ros.ros.conversions import mono_frame_from_msgs, stereo_frame_from_msgs

T = TypeVar("T")


@dataclass(frozen=True)
class CameraTopics:
    """The image topic of one camera and its camera_info topic."""

    image: str
    info: str


@dataclass(frozen=True)
class InputSpec:
    """The cameras a mode reads: (left, right) in stereo mode, one camera in sequential mode.

    Synchronised inputs are ordered camera by camera, image before camera_info
    (:attr:`topics`); :meth:`per_camera` groups values given in that order.
    """

    mode: PairMode
    cameras: tuple[CameraTopics, ...]

    def __post_init__(self) -> None:
        expected = 2 if self.mode == "stereo" else 1
        if len(self.cameras) != expected:
            raise ConfigError(
                f"{self.mode} input needs {expected} camera(s), got {len(self.cameras)}"
            )

    @classmethod
    def node_default(cls, mode: PairMode) -> InputSpec:
        """The matcher node's relative input names (remappable)."""
        if mode == "stereo":
            return cls.stereo(
                CameraTopics("left/image_rect", "left/camera_info"),
                CameraTopics("right/image_rect", "right/camera_info"),
            )
        return cls.sequential(CameraTopics("image", "camera_info"))

    @classmethod
    def stereo(cls, left: CameraTopics, right: CameraTopics) -> InputSpec:
        """A rectified stereo pair."""
        return cls("stereo", (left, right))

    @classmethod
    def sequential(cls, camera: CameraTopics) -> InputSpec:
        """One camera whose consecutive frames are matched."""
        return cls("sequential", (camera,))

    @property
    def topics(self) -> tuple[str, ...]:
        """Every input topic in synchronisation order (image, camera_info per camera)."""
        return tuple(topic for camera in self.cameras for topic in (camera.image, camera.info))

    @property
    def message_types(self) -> tuple[type, ...]:
        """The message type of each of :attr:`topics`."""
        return (Image, CameraInfo) * len(self.cameras)

    def per_camera(self, values: Sequence[T]) -> list[tuple[T, T]]:
        """Values in :attr:`topics` order -> one (image value, camera_info value) per camera."""
        if len(values) != len(self.topics):
            raise ConfigError(f"expected {len(self.topics)} values, got {len(values)}")
        return [(values[i], values[i + 1]) for i in range(0, len(values), 2)]

    def frame_from_msgs(
        self, msgs: Sequence[Any], info_topics: Sequence[str], *, rectified: bool
    ) -> MonoFrame | StereoFrame:
        """The pipeline frame of one synchronised group of messages.

        Args:
            msgs: Image and CameraInfo messages in :attr:`topics` order.
            info_topics: The camera_info topic name of each camera (resolved), for messages.
            rectified: Sequential mode: the images are rectified (use P, no distortion).
                Stereo mode always is (stereo_image_proc's image_rect).

        Raises:
            InputError: When an image cannot be used.
        """
        cameras = self.per_camera(msgs)
        if self.mode == "stereo":
            (left, left_info), (right, right_info) = cameras
            return stereo_frame_from_msgs(
                left, left_info, right, right_info, (info_topics[0], info_topics[1])
            )
        ((image, info),) = cameras
        return mono_frame_from_msgs(image, info, rectified=rectified, info_topic=info_topics[0])
