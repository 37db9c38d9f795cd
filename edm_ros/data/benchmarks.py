"""The full ScanNet-1500 and MegaDepth-1500 test sets in the LoFTR layout (as used by EDM).

LoFTR's ``data/`` layout (see docs/evaluation.md for the downloads)::

    data/scannet/test/scene0707_00/color/15.jpg        images (1296x968)
    data/scannet/index/test.npz                         name [N, 4]: scene, sub-scene, frame0,
                                                        frame1 (+ rel_pose [N, 3, 4] = T_0to1)
    data/scannet/index/intrinsics.npz                   K per scene, for 640x480
    data/megadepth/test/Undistorted_SfM/0015/images/…   images
    data/megadepth/index/scene_info_val_1500/megadepth_test_1500.txt   scene-info names, one a line
    data/megadepth/index/scene_info_val_1500/0015_0.1_0.3.npz          image_paths, intrinsics,
                                                        poses (world to camera), pair_infos

Protocol settings that come with each set (official code): ScanNet poses are evaluated at 640x480
with precision threshold 5e-4; MegaDepth images are resized to a 1152-pixel long side and the
precision threshold is 1e-4.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edm_ros.data.pairs import (
    MEGADEPTH_EPIPOLAR_THRESHOLD,
    SCANNET_EPIPOLAR_THRESHOLD,
    PoseDataset,
    PosePair,
)
from edm_ros.errors import InputError

SCANNET_EVALUATION_SIZE = (640, 480)  # (W, H) of the intrinsics and of the 0.5 px RANSAC threshold
MEGADEPTH_LONG_SIDE = 1152  # EDM's outdoor.sh ("follow ELoFTR's setting")


def _first_existing(candidates: list[Path], what: str) -> Path:
    for candidate in candidates:
        if candidate.exists():
            return candidate
    tried = ", ".join(str(c) for c in candidates)
    raise InputError(f"{what} not found (tried {tried}); see docs/evaluation.md for the layout")


def load_loftr_npz(path: Path, allow_pickle: bool = False) -> dict[str, np.ndarray]:
    """Every array of a LoFTR-layout index file (scene info, test pairs, intrinsics)."""
    try:
        with np.load(path, allow_pickle=allow_pickle) as content:
            return {key: content[key] for key in content.files}
    except (OSError, ValueError) as err:
        raise InputError(f"{path}: unreadable as a LoFTR index .npz ({err})") from err


def scannet_world_to_camera(pose_file: Path) -> np.ndarray:
    """ScanNet ``pose/<frame>.txt`` holds camera-to-world; return world-to-camera [4, 4]."""
    try:
        return np.linalg.inv(np.loadtxt(pose_file).reshape(4, 4))
    except (OSError, ValueError) as err:
        raise InputError(f"{pose_file}: unreadable ScanNet pose ({err})") from err


def read_scannet1500(root: str | Path, index_dir: str | Path | None = None) -> PoseDataset:
    """Read ScanNet-1500 in the LoFTR layout.

    Args:
        root: ``data/scannet`` (holding ``test/`` and ``index/``) or the image folder itself.
        index_dir: folder of ``test.npz`` and ``intrinsics.npz``; default ``root/index`` or
            ``root``.

    Returns:
        1500 pairs; K refers to 640x480 and poses are evaluated there (ScanNet protocol).

    Raises:
        InputError: index files or images missing.
    """
    root = Path(root)
    index = Path(index_dir) if index_dir is not None else None
    index_candidates = [index] if index else [root / "index", root]
    test_npz = _first_existing([d / "test.npz" for d in index_candidates], "ScanNet test.npz")
    intrinsics = load_loftr_npz(test_npz.parent / "intrinsics.npz")
    content = load_loftr_npz(test_npz)
    image_root = root / "test" if (root / "test").is_dir() else root
    relative_poses = content["rel_pose"].reshape(-1, 3, 4) if "rel_pose" in content else None
    pairs = []
    for number, (scene, sub_scene, frame0, frame1) in enumerate(content["name"]):
        scene_name = f"scene{int(scene):04d}_{int(sub_scene):02d}"
        if scene_name not in intrinsics:
            raise InputError(f"{test_npz.parent / 'intrinsics.npz'}: no K for {scene_name}")
        scene_dir = image_root / scene_name
        if relative_poses is not None:
            T_0to1 = np.vstack([relative_poses[number], [0.0, 0.0, 0.0, 1.0]])
        else:
            T_0to1 = scannet_world_to_camera(scene_dir / "pose" / f"{frame1}.txt") @ np.linalg.inv(
                scannet_world_to_camera(scene_dir / "pose" / f"{frame0}.txt")
            )
        K = np.asarray(intrinsics[scene_name], dtype=np.float64).reshape(3, 3)
        pairs.append(
            PosePair(
                name=f"{scene_name}/{frame0}-{frame1}",
                image0=scene_dir / "color" / f"{frame0}.jpg",
                image1=scene_dir / "color" / f"{frame1}.jpg",
                K0=K,
                K1=K,
                T_0to1=T_0to1.astype(np.float64),
                intrinsics_size=SCANNET_EVALUATION_SIZE,
                evaluation_size=SCANNET_EVALUATION_SIZE,
            )
        )
    _check_first_image(pairs, image_root)
    return PoseDataset("scannet1500", tuple(pairs), epipolar_threshold=SCANNET_EPIPOLAR_THRESHOLD)


def _check_first_image(pairs: list[PosePair], image_root: Path) -> None:
    if not pairs:
        raise InputError(f"{image_root}: the index lists no pairs")
    if not pairs[0].image0.exists():
        raise InputError(
            f"{pairs[0].image0}: image missing; is {image_root} the folder of the test images?"
        )


def _megadepth_scene_pairs(scene_npz: Path, image_root: Path) -> list[PosePair]:
    # pair_infos is an object array of ((idx0, idx1), overlap, central_matches) tuples, so the
    # file needs pickle; only load index files from the official release.
    info = load_loftr_npz(scene_npz, allow_pickle=True)
    pairs = []
    for (index0, index1), _overlap, _central in info["pair_infos"]:
        T0, T1 = info["poses"][index0], info["poses"][index1]  # world to camera
        path0, path1 = str(info["image_paths"][index0]), str(info["image_paths"][index1])
        pairs.append(
            PosePair(
                name=f"{scene_npz.stem}/{Path(path0).stem}-{Path(path1).stem}",
                image0=image_root / path0,
                image1=image_root / path1,
                K0=np.asarray(info["intrinsics"][index0], dtype=np.float64).reshape(3, 3),
                K1=np.asarray(info["intrinsics"][index1], dtype=np.float64).reshape(3, 3),
                T_0to1=(T1 @ np.linalg.inv(T0)).astype(np.float64),
            )
        )
    return pairs


def read_megadepth1500(
    root: str | Path, index_dir: str | Path | None = None, long_side: int = MEGADEPTH_LONG_SIDE
) -> PoseDataset:
    """Read MegaDepth-1500 in the LoFTR layout.

    Args:
        root: ``data/megadepth`` (holding ``test/`` and ``index/``) or the image folder itself.
        index_dir: folder of ``megadepth_test_1500.txt`` and the scene npz files; default
            ``root/index/scene_info_val_1500``, ``root/index`` or ``root``.
        long_side: images are resized to this long side before matching (EDM: 1152; its
            LO-RANSAC script: 832).

    Returns:
        1500 pairs in list order; K refers to the images as stored.

    Raises:
        InputError: index files or images missing.
    """
    root = Path(root)
    candidates = (
        [Path(index_dir)]
        if index_dir is not None
        else [root / "index" / "scene_info_val_1500", root / "index", root]
    )
    scene_list = _first_existing(
        [d / "megadepth_test_1500.txt" for d in candidates], "megadepth_test_1500.txt"
    )
    image_root = root / "test" if (root / "test").is_dir() else root
    pairs: list[PosePair] = []
    for line in scene_list.read_text().split():
        scene_npz = scene_list.parent / (line if line.endswith(".npz") else f"{line}.npz")
        pairs.extend(_megadepth_scene_pairs(scene_npz, image_root))
    _check_first_image(pairs, image_root)
    return PoseDataset(
        "megadepth1500",
        tuple(pairs),
        epipolar_threshold=MEGADEPTH_EPIPOLAR_THRESHOLD,
        image_long_side=long_side,
    )
