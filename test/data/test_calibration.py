"""EuRoC sensor.yaml and Kalibr camchain.yaml readers."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from edm_ros.data.calibration import (
    read_euroc_camera,
    read_euroc_rig,
    read_kalibr_camchain,
    stereo_extrinsic,
)
from edm_ros.errors import InputError


def test_euroc_camera_reads_intrinsics_distortion_and_body_pose(data_dir) -> None:
    camera = read_euroc_camera(data_dir / "euroc_v101_micro_stereo" / "cam0" / "sensor.yaml")
    np.testing.assert_allclose(camera.K, [[458.654, 0, 367.215], [0, 457.296, 248.375], [0, 0, 1]])
    assert (camera.width, camera.height, camera.distortion_model) == (752, 480, "plumb_bob")
    np.testing.assert_allclose(
        camera.distortion, [-0.28340811, 0.07395907, 0.00019359, 1.76187114e-05]
    )
    assert camera.T_body_cam[0, 3] == pytest.approx(-0.0216401454975)


def test_kalibr_camchain_gives_the_same_stereo_extrinsic(data_dir, tmp_path) -> None:
    left, right = read_euroc_rig(data_dir / "euroc_v101_micro_stereo")
    expected = stereo_extrinsic(left, right)
    camchain = {
        f"cam{index}": {
            "camera_model": "pinhole",
            "intrinsics": [float(c.K[0, 0]), float(c.K[1, 1]), float(c.K[0, 2]), float(c.K[1, 2])],
            "distortion_model": "radtan",
            "distortion_coeffs": c.distortion.tolist(),
            "resolution": [c.width, c.height],
        }
        for index, c in enumerate((left, right))
    }
    camchain["cam1"]["T_cn_cnm1"] = expected.tolist()
    path = tmp_path / "camchain.yaml"
    path.write_text(yaml.safe_dump(camchain))
    cameras = read_kalibr_camchain(path)
    np.testing.assert_allclose(stereo_extrinsic(cameras[0], cameras[1]), expected, atol=1e-12)
    np.testing.assert_allclose(cameras[1].K, right.K)
    assert cameras[1].distortion_model == "plumb_bob"


def test_kalibr_camera_without_its_chain_transform_is_reported(tmp_path) -> None:
    entry = {
        "intrinsics": [1, 1, 0, 0],
        "resolution": [10, 10],
        "distortion_model": "radtan",
        "distortion_coeffs": [0, 0, 0, 0],
    }
    path = tmp_path / "camchain.yaml"
    path.write_text(yaml.safe_dump({"cam0": entry, "cam1": entry}))
    with pytest.raises(InputError, match="missing T_cn_cnm1"):
        read_kalibr_camchain(path)


def test_unknown_distortion_model_is_named(tmp_path) -> None:
    entry = {
        "intrinsics": [1, 1, 0, 0],
        "resolution": [10, 10],
        "distortion_model": "fov",
        "distortion_coeffs": [0.5],
    }
    path = tmp_path / "camchain.yaml"
    path.write_text(yaml.safe_dump({"cam0": entry}))
    with pytest.raises(InputError, match="distortion model 'fov' not supported"):
        read_kalibr_camchain(path)


def test_sensor_yaml_without_intrinsics_is_rejected(tmp_path) -> None:
    path = tmp_path / "sensor.yaml"
    path.write_text("%YAML:1.0\nsensor_type: imu\n")
    with pytest.raises(InputError, match=r"not a EuRoC camera sensor\.yaml"):
        read_euroc_camera(path)
