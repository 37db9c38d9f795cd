"""The runners on exact correspondences (errors ~0) and SIFT on real EuRoC stereo pairs."""

from __future__ import annotations

import numpy as np
import pytest

from edm_ros.data.calibration import read_euroc_stereo
from edm_ros.data.pairs import HomographyDataset, HomographyPair, PoseDataset, PosePair
from edm_ros.evaluation.baselines import build_matcher
from edm_ros.evaluation.runner import (
    estimate_pose,
    evaluate,
    evaluate_homography,
    evaluate_pose,
    match_files,
    protocol_cameras,
)
from edm_ros.geometry.camera import CameraModel
from test.evaluation.oracle import oracle
from test.evaluation.scene import SCANNET_K, SCANNET_T_0TO1, blank_images, exact_matches
from test.evaluation.test_metrics import GRAFFITI_H_1_2


class TestPose:
    def test_exact_correspondences_give_errors_below_a_tenth_of_a_degree(
        self, scannet_like_dataset
    ) -> None:
        dataset, points0, points1 = scannet_like_dataset
        assert len(points0) > 100
        evaluation = evaluate_pose(oracle(points0, points1), dataset, show_progress=False)
        (result,) = evaluation.pairs
        for estimator in ("ransac", "poselib"):
            estimate = result.estimates[estimator]
            assert estimate.success, estimator
            assert estimate.rotation_error_deg < 0.1, estimator
            assert estimate.translation_error_deg < 0.1, estimator
            assert evaluation.auc(estimator) == pytest.approx([1.0, 1.0, 1.0], abs=0.02)
        assert result.precision == 1.0 and result.correct.all()
        assert result.stereo is None

    def test_wrong_matches_give_large_errors_and_low_precision(self, scannet_like_dataset) -> None:
        dataset, points0, points1 = scannet_like_dataset
        shuffled = np.random.default_rng(1).permutation(points1)
        (result,) = evaluate_pose(oracle(points0, shuffled), dataset, show_progress=False).pairs
        assert result.precision < 0.3
        assert result.estimates["ransac"].error_deg > 5.0

    def test_fewer_than_five_matches_fail_with_infinite_error(self) -> None:
        camera = CameraModel(SCANNET_K, 1296, 968)
        estimate = estimate_pose(
            "ransac", np.zeros((4, 2)), np.zeros((4, 2)), camera, camera, SCANNET_T_0TO1
        )
        assert not estimate.success and estimate.error_deg == np.inf

    def test_cameras_move_to_the_evaluation_resolution(self) -> None:
        pair = PosePair(
            "p",
            "a.png",
            "b.png",
            SCANNET_K,
            SCANNET_K,
            SCANNET_T_0TO1,  # type: ignore[arg-type]
            intrinsics_size=(1296, 968),
            evaluation_size=(640, 480),
        )
        camera0, _, scale0, _ = protocol_cameras(pair, (1296, 968), (1296, 968))
        assert (camera0.width, camera0.height) == (640, 480)
        np.testing.assert_allclose(scale0, [640 / 1296, 480 / 968])
        np.testing.assert_allclose(camera0.K[0], SCANNET_K[0] * 640 / 1296)
        np.testing.assert_allclose(camera0.K[1], SCANNET_K[1] * 480 / 968)


class TestStereo:
    def test_exact_stereo_matches_recover_the_calibrated_baseline(self, data_dir) -> None:
        full = read_euroc_stereo(data_dir / "euroc_v101_micro_stereo")
        dataset = PoseDataset(full.name, full.pairs[:1], stereo=True)
        pair = dataset.pairs[0]
        left = CameraModel(pair.K0, 752, 480, pair.distortion0, "plumb_bob")
        right = CameraModel(pair.K1, 752, 480, pair.distortion1, "plumb_bob")
        points0, points1 = exact_matches(left, right, pair.T_0to1, count=400)
        (result,) = evaluate_pose(oracle(points0, points1), dataset, show_progress=False).pairs
        assert result.stereo is not None
        assert np.abs(result.stereo.vertical_disparity_px).max() < 1e-3
        assert result.stereo.baseline_direction_error_deg < 0.1
        assert result.estimates["ransac"].rotation_error_deg < 0.1

    def test_sift_on_euroc_stereo_reaches_the_reference_accuracy(self, data_dir) -> None:
        full = read_euroc_stereo(data_dir / "euroc_v101_micro_stereo")
        evaluation = evaluate_pose(build_matcher("sift"), full, max_pairs=6, show_progress=False)
        rotation = [pair.estimates["ransac"].rotation_error_deg for pair in evaluation.pairs]
        assert np.median(rotation) < 0.6  # shared data README: median 0.3° with SIFT + RANSAC
        assert np.mean([pair.precision for pair in evaluation.pairs]) > 0.9
        disparity = [
            p.stereo.median_abs_vertical_disparity_px for p in evaluation.pairs if p.stereo
        ]
        assert np.median(disparity) < 0.3  # README: 0.12 px


class TestHomography:
    def test_ground_truth_correspondences_give_zero_corner_error(self, tmp_path) -> None:
        image0, image1 = blank_images(tmp_path, (800, 640))
        dataset = HomographyDataset(
            "plane", (HomographyPair("1-2", image0, image1, GRAFFITI_H_1_2),)
        )
        grid = np.stack(np.meshgrid(np.arange(50, 750, 50.0), np.arange(50, 600, 50.0)), -1)
        points0 = grid.reshape(-1, 2)
        projected = np.c_[points0, np.ones(len(points0))] @ GRAFFITI_H_1_2.T
        evaluation = evaluate(
            oracle(points0, projected[:, :2] / projected[:, 2:]), dataset, show_progress=False
        )
        assert isinstance(evaluation.dataset, HomographyDataset)
        assert evaluation.corner_errors_px()[0] < 1e-3  # type: ignore[union-attr]
        assert evaluation.auc() == pytest.approx([1.0, 1.0, 1.0], abs=1e-3)  # type: ignore[call-arg]
        assert evaluation.pairs[0].precision == 1.0

    def test_no_matches_count_as_a_failure(self, tmp_path) -> None:
        image0, image1 = blank_images(tmp_path, (200, 160))
        dataset = HomographyDataset("plane", (HomographyPair("1-2", image0, image1, np.eye(3)),))
        evaluation = evaluate_homography(build_matcher("sift"), dataset, show_progress=False)
        assert evaluation.pairs[0].corner_error_px == np.inf
        assert evaluation.auc() == [0.0, 0.0, 0.0]


def test_resized_matching_maps_points_back_to_the_original_pixels(tmp_path) -> None:
    image0, image1 = blank_images(tmp_path, (800, 600))
    corner = np.array([[399.0, 299.0]])  # in the 400x300 image the matcher sees
    matches, _ = match_files(oracle(corner, corner), image0, image1, long_side=400)
    assert matches.image0_size == (800, 600) and matches.image1_size == (800, 600)
    np.testing.assert_allclose(matches.keypoints0, [[798.0, 598.0]])
