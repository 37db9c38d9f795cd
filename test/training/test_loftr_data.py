"""MegaDepth / ScanNet training pairs in the LoFTR layout, on tiny scenes with exact geometry."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import default_collate

from edm_ros.data.textures import textured_image
from edm_ros.errors import InputError
from edm_ros.training.data import ground_truth
from edm_ros.training.loftr_data import (
    DepthPairDataset,
    load_view,
    read_megadepth_scenes,
    read_scannet_scenes,
)
from test.training.test_supervision import expected_translation_matches, matches_of

NETWORK_SIZE = (160, 128)
PLANE_DEPTH_M = 5.0


def translated_camera(t: tuple[float, float, float]) -> np.ndarray:
    """world -> camera 1 when camera 0 is the world frame and X_cam1 = X_cam0 + t."""
    pose = np.eye(4)
    pose[:3, 3] = t
    return pose


def write_scannet(root: Path, scenes: int = 2) -> None:
    """ScanNet layout at 160x128: a plane at 5 m, camera 1 shifted so that pixels move (16, 8)."""
    K = np.array([[100.0, 0, 80], [0, 100.0, 64], [0, 0, 1]])
    intrinsics = {}
    for scene in range(scenes):
        name = f"scene{scene:04d}_00"
        intrinsics[name] = K
        scene_dir = root / "train" / name
        for sub in ("color", "depth", "pose"):
            (scene_dir / sub).mkdir(parents=True)
        for frame, t in ((10, (0.0, 0.0, 0.0)), (20, (0.8, 0.4, 0.0))):
            cv2.imwrite(str(scene_dir / "color" / f"{frame}.jpg"), textured_image(160, 128, frame))
            depth_mm = np.full((128, 160), PLANE_DEPTH_M * 1000, np.uint16)
            cv2.imwrite(str(scene_dir / "depth" / f"{frame}.png"), depth_mm)
            np.savetxt(scene_dir / "pose" / f"{frame}.txt", np.linalg.inv(translated_camera(t)))
        index_dir = root / "index" / "scene_data" / "train"
        index_dir.mkdir(parents=True, exist_ok=True)
        np.savez(index_dir / f"{name}_pairs.npz", name=np.array([[scene, 0, 10, 20]]), score=[0.5])
    np.savez(root / "index" / "intrinsics.npz", **intrinsics)


def write_megadepth(root: Path) -> None:
    """MegaDepth layout: 200x150 images (resized x0.8 and padded to 160x128), .h5 depth."""
    h5py = pytest.importorskip("h5py")
    scene = "0001_0.1_0.3"
    image_dir, depth_dir = root / "train" / "images", root / "train" / "depths"
    image_dir.mkdir(parents=True)
    depth_dir.mkdir(parents=True)
    for index in range(3):
        cv2.imwrite(str(image_dir / f"{index}.jpg"), textured_image(200, 150, index))
        with h5py.File(depth_dir / f"{index}.h5", "w") as file:
            file["depth"] = np.full((150, 200), PLANE_DEPTH_M, np.float32)
    K = np.array([[100.0, 0, 100], [0, 100.0, 75], [0, 0, 1]])
    # 1 m x 0.5 m at 5 m with f = 100: (20, 10) image px = (16, 8) network px.
    poses = [translated_camera(t) for t in ((0, 0, 0), (1.0, 0.5, 0), (0.5, 0, 0))]
    pair_infos = np.empty(2, dtype=object)
    pair_infos[0] = ((0, 1), 0.5, np.zeros(2))
    pair_infos[1] = ((0, 2), 0.05, np.zeros(2))  # dropped by min_overlap 0.1
    index_dir = root / "index" / "scene_info_0.1_0.7"
    index_dir.mkdir(parents=True)
    np.savez(
        index_dir / f"{scene}.npz",
        image_paths=np.array([f"images/{i}.jpg" for i in range(3)], dtype=object),
        depth_paths=np.array([f"depths/{i}.h5" for i in range(3)], dtype=object),
        intrinsics=np.stack([K] * 3),
        poses=np.stack(poses),
        pair_infos=pair_infos,
    )
    list_dir = root / "index" / "trainvaltest_list"
    list_dir.mkdir(parents=True)
    (list_dir / "train_list.txt").write_text(scene + "\n")


def test_scannet_pairs_give_the_analytic_ground_truth(tmp_path):
    write_scannet(tmp_path)
    dataset = DepthPairDataset(read_scannet_scenes(tmp_path), NETWORK_SIZE, 3, seed=0)
    batch = default_collate([dataset[0]])
    assert batch.image0.shape == (1, 1, 128, 160) and batch.image0.max() <= 1.0
    assert torch.allclose(batch.depth0, torch.full_like(batch.depth0, PLANE_DEPTH_M))
    assert matches_of(ground_truth(batch)) == expected_translation_matches((2, 1))


def test_epochs_are_scene_balanced_and_reproducible(tmp_path):
    write_scannet(tmp_path, scenes=2)
    dataset = DepthPairDataset(read_scannet_scenes(tmp_path), NETWORK_SIZE, 5, seed=3)
    assert len(dataset) == 10
    assert Counter(scene for scene, _ in dataset.order) == {0: 5, 1: 5}
    first = list(dataset.order)
    dataset.set_epoch(1)
    dataset.set_epoch(0)
    assert dataset.order == first


def test_megadepth_pairs_are_resized_padded_and_keep_exact_geometry(tmp_path):
    write_megadepth(tmp_path)
    scenes = read_megadepth_scenes(tmp_path, min_overlap=0.1)
    assert [len(pairs) for pairs in scenes.values()] == [1]
    image, depth, K = load_view(scenes["0001_0.1_0.3"][0][0], NETWORK_SIZE)
    assert image.shape == depth.shape == (128, 160)
    assert (depth[:120] == PLANE_DEPTH_M).all() and (depth[120:] == 0).all()  # 8 padded rows
    assert (image[120:] == 0).all()
    assert np.allclose(K, [[80, 0, 80], [0, 80, 60], [0, 0, 1]])
    batch = default_collate([DepthPairDataset(scenes, NETWORK_SIZE, 1, seed=0)[0]])
    expected = {  # rows of the padding (y >= 120) have no depth in either image
        row: col for row, col in expected_translation_matches((2, 1)).items() if row // 20 <= 13
    }
    assert matches_of(ground_truth(batch)) == expected


def test_missing_layout_is_reported(tmp_path):
    with pytest.raises(InputError, match=r"intrinsics\.npz"):
        read_scannet_scenes(tmp_path)
    (tmp_path / "index" / "scene_info_0.1_0.7").mkdir(parents=True)
    with pytest.raises(InputError, match=r"no scene \.npz files"):
        read_megadepth_scenes(tmp_path)
    with pytest.raises(InputError, match="scene list not found"):
        read_megadepth_scenes(tmp_path, scene_list=tmp_path / "nope.txt")
