"""rosbag2 writing (EuRoC -> bag) and reading, both storage plugins, without ROS."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edm_ros.data.bags import bag_topics, deserialize, euroc_to_bag, read_bag
from edm_ros.errors import ConfigError, InputError


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_euroc_bag_holds_the_images_with_their_stamps(data_dir, tmp_path, storage) -> None:
    euroc = data_dir / "euroc_v101_micro_stereo"
    stamps = euroc_to_bag(euroc, tmp_path / "bag", storage=storage, max_frames=2)
    assert bag_topics(tmp_path / "bag") == {
        "/cam0/image_raw": "sensor_msgs/msg/Image",
        "/cam0/camera_info": "sensor_msgs/msg/CameraInfo",
        "/cam1/image_raw": "sensor_msgs/msg/Image",
        "/cam1/camera_info": "sensor_msgs/msg/CameraInfo",
    }
    images = list(read_bag(tmp_path / "bag", ["/cam1/image_raw"]))
    assert [m.log_time_ns for m in images] == stamps == [1403715273262142976, 1403715273512143104]
    for message, stamp in zip(images, stamps):
        image = deserialize(message)
        assert image.header.stamp.sec * 10**9 + image.header.stamp.nanosec == stamp
        assert (image.encoding, image.header.frame_id) == ("mono8", "cam1")
        expected = cv2.imread(str(euroc / "cam1" / f"{stamp}.png"), cv2.IMREAD_GRAYSCALE)
        np.testing.assert_array_equal(image.data.reshape(image.height, image.width), expected)


def test_right_camera_info_carries_the_rectified_baseline(data_dir, tmp_path) -> None:
    euroc_to_bag(data_dir / "euroc_v101_micro_stereo", tmp_path / "bag", max_frames=1)
    (message,) = read_bag(tmp_path / "bag", ["/cam1/camera_info"])
    info = deserialize(message)
    projection = info.p.reshape(3, 4)
    assert -projection[0, 3] / projection[0, 0] == pytest.approx(0.1101, abs=1e-3)  # metres
    assert info.distortion_model == "plumb_bob" and len(info.d) == 5


def test_bag_problems_are_explained(data_dir, tmp_path) -> None:
    with pytest.raises(InputError, match="not a readable rosbag2"):
        bag_topics(tmp_path)
    euroc_to_bag(data_dir / "euroc_v101_micro_stereo", tmp_path / "bag", max_frames=1)
    with pytest.raises(InputError, match="no topic /left/image_raw"):
        list(read_bag(tmp_path / "bag", ["/left/image_raw"]))
    with pytest.raises(ConfigError, match="exists"):
        euroc_to_bag(data_dir / "euroc_v101_micro_stereo", tmp_path / "bag", max_frames=1)
