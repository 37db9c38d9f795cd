"""ScanNet-1500 and MegaDepth-1500 readers on miniature copies of the LoFTR layout."""

from __future__ import annotations

import numpy as np
import pytest

from edm_ros.data.benchmarks import read_megadepth1500, read_scannet1500
from edm_ros.errors import InputError

K_640 = np.array([[577.0, 0.0, 319.5], [0.0, 577.0, 239.5], [0.0, 0.0, 1.0]])


def _rigid(angle_rad: float, translation: list[float]) -> np.ndarray:
    transform = np.eye(4)
    transform[:3, :3] = [
        [np.cos(angle_rad), 0, np.sin(angle_rad)],
        [0, 1, 0],
        [-np.sin(angle_rad), 0, np.cos(angle_rad)],
    ]
    transform[:3, 3] = translation
    return transform


def _scannet_layout(root, with_relative_pose: bool) -> np.ndarray:
    """data/scannet with one pair (scene0707_00, frames 15 and 30); returns its T_0to1."""
    (root / "index").mkdir(parents=True)
    scene = root / "test" / "scene0707_00"
    (scene / "color").mkdir(parents=True)
    (scene / "pose").mkdir()
    for frame in (15, 30):
        (scene / "color" / f"{frame}.jpg").write_bytes(b"")
    camera_to_world0, camera_to_world1 = _rigid(0.1, [1, 2, 3]), _rigid(-0.2, [1.5, 2, 2.5])
    np.savetxt(scene / "pose" / "15.txt", camera_to_world0)
    np.savetxt(scene / "pose" / "30.txt", camera_to_world1)
    T_0to1 = np.linalg.inv(camera_to_world1) @ camera_to_world0
    names = np.array([[707, 0, 15, 30]])
    content = {"name": names}
    if with_relative_pose:
        content["rel_pose"] = T_0to1[:3].reshape(1, 12)
    np.savez(root / "index" / "test.npz", **content)
    np.savez(root / "index" / "intrinsics.npz", scene0707_00=K_640)
    return T_0to1


@pytest.mark.parametrize("with_relative_pose", [True, False])
def test_scannet1500_pairs_carry_the_protocol_resolution(tmp_path, with_relative_pose) -> None:
    T_0to1 = _scannet_layout(tmp_path, with_relative_pose)
    dataset = read_scannet1500(tmp_path)
    (pair,) = dataset.pairs
    assert pair.image0 == tmp_path / "test/scene0707_00/color/15.jpg"
    np.testing.assert_allclose(pair.T_0to1, T_0to1, atol=1e-12)
    np.testing.assert_allclose(pair.K0, K_640)
    assert pair.intrinsics_size == pair.evaluation_size == (640, 480)
    assert dataset.epipolar_threshold == 5e-4 and dataset.image_long_side is None


def test_scannet1500_without_index_says_where_it_looked(tmp_path) -> None:
    with pytest.raises(InputError, match=r"ScanNet test\.npz not found"):
        read_scannet1500(tmp_path)


def test_megadepth1500_reads_scene_infos_in_list_order(tmp_path) -> None:
    index = tmp_path / "index" / "scene_info_val_1500"
    index.mkdir(parents=True)
    images = tmp_path / "test" / "Undistorted_SfM" / "0015" / "images"
    images.mkdir(parents=True)
    paths = [f"Undistorted_SfM/0015/images/{n}.jpg" for n in ("a", "b", "c")]
    for path in paths:
        (tmp_path / "test" / path).write_bytes(b"")
    world_to_camera = np.stack([_rigid(0.1 * i, [i, 0, 0]) for i in range(3)])
    intrinsics = np.stack([K_640 * [[1 + i], [1], [1]] for i in range(3)])
    pair_infos = np.empty(2, dtype=object)
    pair_infos[0], pair_infos[1] = ((0, 1), 0.4, None), ((2, 0), 0.2, None)
    np.savez(
        index / "0015_0.1_0.3.npz",
        image_paths=np.array(paths, dtype=object),
        intrinsics=intrinsics,
        poses=world_to_camera,
        pair_infos=pair_infos,
    )
    (index / "megadepth_test_1500.txt").write_text("0015_0.1_0.3\n")
    dataset = read_megadepth1500(tmp_path)
    assert [p.name for p in dataset.pairs] == ["0015_0.1_0.3/a-b", "0015_0.1_0.3/c-a"]
    second = dataset.pairs[1]
    np.testing.assert_allclose(
        second.T_0to1, world_to_camera[0] @ np.linalg.inv(world_to_camera[2])
    )
    np.testing.assert_allclose(second.K0, intrinsics[2])
    assert dataset.epipolar_threshold == 1e-4 and dataset.image_long_side == 1152
