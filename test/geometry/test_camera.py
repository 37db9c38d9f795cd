"""CameraModel: normalisation per distortion model, CameraInfo conversion, validation."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edm_ros.errors import ConfigError, InputError
from edm_ros.geometry.camera import CameraModel

K = np.array([[458.0, 0.0, 367.0], [0.0, 457.0, 248.0], [0.0, 0.0, 1.0]])
DISTORTIONS = {
    "plumb_bob": np.array([-0.28, 0.07, 1.9e-4, 1.8e-5, 0.01]),
    "rational_polynomial": np.array([-0.28, 0.07, 1.9e-4, 1.8e-5, 0.01, 0.02, -0.01, 0.005]),
    "equidistant": np.array([-0.01, 0.05, -0.03, 0.005]),
}


def _normalised_grid() -> np.ndarray:
    xs, ys = np.meshgrid(np.linspace(-0.7, 0.7, 9), np.linspace(-0.5, 0.5, 7))
    return np.column_stack([xs.ravel(), ys.ravel()])


def _distort(rays: np.ndarray, model: str, coefficients: np.ndarray) -> np.ndarray:
    """Pixels of normalised rays through OpenCV's forward lens models."""
    points = np.column_stack([rays, np.ones(len(rays))]).reshape(-1, 1, 3)
    zero = np.zeros(3)
    if model == "equidistant":
        pixels = cv2.fisheye.projectPoints(points, zero, zero, K, coefficients)[0]
    else:
        pixels = cv2.projectPoints(points, zero, zero, K, coefficients)[0]
    return pixels.reshape(-1, 2)


class TestNormalize:
    def test_pinhole_is_inverse_intrinsics(self) -> None:
        camera = CameraModel(K, 752, 480)
        rays = camera.normalize(np.array([[367.0, 248.0], [367.0 + 458.0, 248.0 - 2 * 457.0]]))
        np.testing.assert_allclose(rays, [[0.0, 0.0], [1.0, -2.0]], atol=1e-12)

    @pytest.mark.parametrize("model", sorted(DISTORTIONS))
    def test_distorted_pixels_return_to_their_rays(self, model: str) -> None:
        rays = _normalised_grid()
        camera = CameraModel(K, 752, 480, DISTORTIONS[model], model)
        pixels = _distort(rays, model, DISTORTIONS[model])
        assert np.abs(pixels - (rays * [458.0, 457.0] + [367.0, 248.0])).max() > 5.0  # distorted
        np.testing.assert_allclose(camera.normalize(pixels), rays, atol=1e-8)

    @pytest.mark.parametrize("num_points", [0, 1, 7])
    @pytest.mark.parametrize("model", ["none", "plumb_bob", "equidistant"])
    def test_shape_and_dtype(self, num_points: int, model: str) -> None:
        coefficients = DISTORTIONS.get(model, np.zeros(0))
        camera = CameraModel(K, 752, 480, coefficients, model)
        points = np.full((num_points, 2), 100.0, np.float32)
        rays = camera.normalize(points)
        assert rays.shape == (num_points, 2)
        assert rays.dtype == np.float64

    def test_all_zero_coefficients_are_a_pinhole_camera(self) -> None:
        camera = CameraModel(K, 752, 480, np.zeros(5), "plumb_bob")
        assert camera.distortion.size == 0
        np.testing.assert_allclose(camera.normalize(np.array([[367.0, 248.0]])), [[0.0, 0.0]])

    @pytest.mark.parametrize(
        ("points", "message"),
        [
            (np.zeros((4, 3)), r"points_px: expected a numeric \[N, 2\] array"),
            (np.zeros(6), r"got shape \(6,\)"),
            (np.array([[1.0, np.nan], [2.0, 3.0]]), "1 of 2 points are NaN or infinite"),
        ],
    )
    def test_bad_points_raise_input_error(self, points: np.ndarray, message: str) -> None:
        with pytest.raises(InputError, match=message):
            CameraModel(K, 752, 480).normalize(points)

    def test_mean_focal(self) -> None:
        assert CameraModel(K, 752, 480).mean_focal_px == pytest.approx(457.5)


class TestValidation:
    @pytest.mark.parametrize(
        ("intrinsics", "message"),
        [
            (np.zeros((3, 3)), "uncalibrated camera"),
            (np.where(np.eye(3) > 0, np.nan, 0.0), "expected finite values"),
            (np.diag([-1.0, 1.0, 1.0]), "positive focal lengths"),
            (np.eye(2), r"expected a 3x3 matrix, got shape \(2, 2\)"),
        ],
    )
    def test_bad_intrinsics_raise_config_error(self, intrinsics: np.ndarray, message: str) -> None:
        with pytest.raises(ConfigError, match=message):
            CameraModel(intrinsics, 640, 480)

    def test_bad_distortion_raises_config_error(self) -> None:
        with pytest.raises(ConfigError, match=r"'equidistant' takes \(4,\) coefficients, got 5"):
            CameraModel(K, 752, 480, DISTORTIONS["plumb_bob"], "equidistant")
        with pytest.raises(ConfigError, match="model 'none' with non-zero coefficients"):
            CameraModel(K, 752, 480, np.array([0.1, 0.0, 0.0, 0.0]))
        with pytest.raises(ConfigError, match="expected one of"):
            CameraModel(K, 752, 480, np.zeros(4), "fisheye")
        with pytest.raises(ConfigError, match="positive width and height"):
            CameraModel(K, 0, 480)


class TestFromCameraInfo:
    def test_raw_image_uses_k_and_d(self) -> None:
        camera = CameraModel.from_camera_info(
            K.ravel().tolist(), DISTORTIONS["plumb_bob"].tolist(), "plumb_bob", 752, 480
        )
        np.testing.assert_array_equal(camera.K, K)
        np.testing.assert_array_equal(camera.distortion, DISTORTIONS["plumb_bob"])
        assert camera.distortion_model == "plumb_bob"
        assert (camera.width, camera.height) == (752, 480)

    def test_rectified_image_uses_p_without_distortion(self) -> None:
        projection = np.array([[435.0, 0, 370.0, -47.9], [0, 435.0, 250.0, 0], [0, 0, 1.0, 0]])
        camera = CameraModel.from_camera_info(
            K.ravel(),
            DISTORTIONS["plumb_bob"],
            "plumb_bob",
            752,
            480,
            P=projection.ravel(),
            rectified=True,
        )
        np.testing.assert_array_equal(camera.K, projection[:, :3])
        assert camera.distortion.size == 0
        assert camera.distortion_model == "none"

    def test_empty_model_and_no_coefficients_mean_no_distortion(self) -> None:
        camera = CameraModel.from_camera_info(K.ravel(), [], "", 752, 480)
        assert camera.distortion_model == "none"

    @pytest.mark.parametrize(
        ("kwargs", "message"),
        [
            ({"K": [0.0] * 9}, "camera_info K: values are all zero or not finite"),
            ({"K": [np.nan] * 9}, "camera_info K: values are all zero or not finite"),
            ({"K": [1.0] * 6}, "camera_info K: expected 9 values, got 6"),
            ({"distortion_model": "kannala"}, "distortion_model: expected one of"),
            ({"rectified": True}, "rectified=True needs P"),
            ({"rectified": True, "P": [0.0] * 12}, "camera_info P: values are all zero"),
        ],
    )
    def test_uncalibrated_or_malformed_info_raises_config_error(
        self, kwargs: dict, message: str
    ) -> None:
        fields = {"K": K.ravel(), "D": [], "distortion_model": "", "width": 752, "height": 480}
        with pytest.raises(ConfigError, match=message):
            CameraModel.from_camera_info(**{**fields, **kwargs})
