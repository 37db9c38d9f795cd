"""MegaDepth and ScanNet training pairs with depth, in the LoFTR data layout (as EDM trains).

MegaDepth (``data_root`` = ``data/megadepth``)::

    train/<image_paths[i]>, train/<depth_paths[i]>     images and depth (.h5, key "depth", metres)
    index/scene_info_0.1_0.7/<scene>.npz               image_paths, depth_paths, intrinsics [N,3,3],
                                                        poses [N,4,4] world->camera, pair_infos
    index/trainvaltest_list/train_list.txt             scene names (default scene list)

ScanNet (``data_root`` = ``data/scannet``, LoFTR's 640x480 export)::

    train/<scene>/color/<frame>.jpg, depth/<frame>.png (uint16 mm), pose/<frame>.txt (cam->world)
    index/scene_data/train/<name>.npz                  name [N, 4]: scene, sub-scene, frame0/1
    index/scene_data/train_list/scannet_all.txt        npz names (default scene list)
    index/intrinsics.npz                               K per scene (640x480)

Each image is resized to fit the network input (aspect kept) and zero-padded at the bottom and
right, like the official MegaDepth loader; depth is sampled at the network pixels (0 in padding)
and K rescaled, so the ground truth is computed directly in network-input pixels. Epochs are
scene-balanced: ``pairs_per_scene`` draws with replacement from every scene (official 100).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from edm_ros.data.benchmarks import load_loftr_npz, scannet_world_to_camera
from edm_ros.data.images import read_grey
from edm_ros.errors import ConfigError, InputError
from edm_ros.training.config import TrainConfig
from edm_ros.training.data import DepthBatch


@dataclass(frozen=True)
class DepthView:
    """One image of a rigid scene with depth and calibration."""

    image: Path
    depth: Path  # .h5 (MegaDepth, metres), .png (uint16 millimetres) or .npy (metres)
    K: np.ndarray  # [3, 3] intrinsics in pixels of the stored image
    world_to_camera: np.ndarray  # [4, 4]


DepthScenes = dict[str, list[tuple[DepthView, DepthView]]]


def _scene_files(index_dir: Path, scene_list: Path | None, default_list: Path) -> list[Path]:
    """The scene npz files to use: those named in the list file, else every npz in the folder."""
    list_file = scene_list if scene_list is not None else default_list
    if list_file.is_file():
        names = list_file.read_text().split()
        return [index_dir / (name if name.endswith(".npz") else f"{name}.npz") for name in names]
    if scene_list is not None:
        raise InputError(f"{scene_list}: scene list not found")
    files = sorted(index_dir.glob("*.npz"))
    if not files:
        raise InputError(f"{index_dir}: no scene .npz files; is data_root the LoFTR data folder?")
    return files


def read_megadepth_scenes(
    root: str | Path, scene_list: str | Path | None = None, min_overlap: float = 0.0
) -> DepthScenes:
    """MegaDepth training pairs per scene-info file (pairs with overlap > ``min_overlap``)."""
    root = Path(root)
    index_dir = root / "index" / "scene_info_0.1_0.7"
    default_list = root / "index" / "trainvaltest_list" / "train_list.txt"
    scenes: DepthScenes = {}
    for scene_file in _scene_files(index_dir, _optional_path(scene_list), default_list):
        # pair_infos is an object array of ((i, j), overlap, central_matches): needs pickle, so
        # read only index files from the official release.
        info = load_loftr_npz(scene_file, allow_pickle=True)
        kept = [
            (int(i), int(j))
            for (i, j), overlap, _central in info["pair_infos"]
            if overlap > min_overlap
        ]
        views = {index: _megadepth_view(root, info, index) for pair in kept for index in pair}
        pairs = [(views[i], views[j]) for i, j in kept]
        if pairs:
            scenes[scene_file.stem] = pairs
    return scenes


def _megadepth_view(root: Path, info: dict[str, np.ndarray], index: int) -> DepthView:
    return DepthView(
        image=root / "train" / str(info["image_paths"][index]),
        depth=root / "train" / str(info["depth_paths"][index]),
        K=np.asarray(info["intrinsics"][index], np.float64).reshape(3, 3),
        world_to_camera=np.asarray(info["poses"][index], np.float64).reshape(4, 4),
    )


def read_scannet_scenes(root: str | Path, scene_list: str | Path | None = None) -> DepthScenes:
    """ScanNet training pairs per index file."""
    root = Path(root)
    index_dir = root / "index" / "scene_data" / "train"
    default_list = root / "index" / "scene_data" / "train_list" / "scannet_all.txt"
    intrinsics = load_loftr_npz(root / "index" / "intrinsics.npz")
    scenes: DepthScenes = {}
    for scene_file in _scene_files(index_dir, _optional_path(scene_list), default_list):
        pairs = []
        for scene, sub_scene, frame0, frame1 in load_loftr_npz(scene_file)["name"]:
            name = f"scene{int(scene):04d}_{int(sub_scene):02d}"
            if name not in intrinsics:
                raise InputError(f"{root / 'index' / 'intrinsics.npz'}: no K for {name}")
            K = np.asarray(intrinsics[name], np.float64).reshape(3, 3)
            pairs.append(
                tuple(_scannet_view(root / "train" / name, f, K) for f in (frame0, frame1))
            )
        if pairs:
            scenes[scene_file.stem] = pairs  # type: ignore[assignment]
    return scenes


def _scannet_view(scene_dir: Path, frame: object, K: np.ndarray) -> DepthView:
    return DepthView(
        image=scene_dir / "color" / f"{frame}.jpg",
        depth=scene_dir / "depth" / f"{frame}.png",
        K=K,
        world_to_camera=scannet_world_to_camera(scene_dir / "pose" / f"{frame}.txt"),
    )


def _optional_path(path: str | Path | None) -> Path | None:
    return None if path is None else Path(path)


def read_depth(path: Path) -> np.ndarray:
    """Depth in metres [H, W] float32 from .h5 (dataset "depth"), .png (uint16 mm) or .npy.

    Raises:
        InputError: missing or unreadable file, or an unknown suffix.
    """
    suffix = path.suffix.lower()
    if suffix == ".h5":
        try:
            import h5py
        except ImportError as err:
            raise InputError(f"{path}: MegaDepth depth needs h5py (pip install h5py)") from err
        try:
            with h5py.File(path, "r") as content:
                return np.asarray(content["depth"], np.float32)
        except (OSError, KeyError) as err:
            raise InputError(f"{path}: unreadable MegaDepth depth ({err})") from err
    if suffix == ".png":
        depth = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if depth is None:
            raise InputError(f"{path}: missing or unreadable depth image")
        return depth.astype(np.float32) / 1000.0
    if suffix == ".npy":
        try:
            return np.load(path).astype(np.float32)
        except (OSError, ValueError) as err:
            raise InputError(f"{path}: unreadable depth array ({err})") from err
    raise InputError(f"{path}: unknown depth format {suffix!r}; expected .h5, .png or .npy")


def load_view(view: DepthView, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Image, depth and K of a view at network size (W, H): fit inside, pad bottom/right.

    Returns:
        ([H, W] float32 image in [0, 1], [H, W] float32 depth (0 = unknown or padding),
        [3, 3] float64 K in network pixels).
    """
    image = read_grey(view.image)
    depth = read_depth(view.depth)
    width, height = size
    scale = min(width / image.shape[1], height / image.shape[0])
    inner = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
    sx, sy = image.shape[1] / inner[0], image.shape[0] / inner[1]  # image px per network px
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    padded = np.zeros((height, width), np.float32)
    padded[: inner[1], : inner[0]] = cv2.resize(image, inner, interpolation=interpolation) / 255.0
    # Depth at the image pixel nearest to each network pixel (the official warp rounds too).
    depth_x = np.round(np.arange(inner[0]) * sx * depth.shape[1] / image.shape[1]).astype(int)
    depth_y = np.round(np.arange(inner[1]) * sy * depth.shape[0] / image.shape[0]).astype(int)
    depth_x = depth_x.clip(0, depth.shape[1] - 1)
    depth_y = depth_y.clip(0, depth.shape[0] - 1)
    padded_depth = np.zeros((height, width), np.float32)
    padded_depth[: inner[1], : inner[0]] = depth[depth_y[:, None], depth_x[None, :]]
    K_network = np.diag([1.0 / sx, 1.0 / sy, 1.0]) @ view.K
    return padded, padded_depth, K_network


class DepthPairDataset(Dataset):
    """Scene-balanced depth pairs: each epoch draws ``pairs_per_scene`` from every scene."""

    def __init__(
        self, scenes: DepthScenes, size: tuple[int, int], pairs_per_scene: int, seed: int
    ) -> None:
        if not scenes:
            raise InputError("no training pairs: every scene is empty after the overlap filter")
        self.pairs = list(scenes.values())
        self.size = size
        self.pairs_per_scene = pairs_per_scene
        self.seed = seed
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        """Draw the epoch's pairs (with replacement per scene, then shuffled)."""
        rng = np.random.default_rng([self.seed, epoch])
        draws = [
            (scene, int(pair))
            for scene, pairs in enumerate(self.pairs)
            for pair in rng.integers(0, len(pairs), self.pairs_per_scene)
        ]
        self.order = [draws[i] for i in rng.permutation(len(draws))]

    def __len__(self) -> int:
        return len(self.order)

    def __getitem__(self, index: int) -> DepthBatch:
        scene, pair = self.order[index]
        view0, view1 = self.pairs[scene][pair]
        image0, depth0, K0 = load_view(view0, self.size)
        image1, depth1, K1 = load_view(view1, self.size)
        T_0to1 = view1.world_to_camera @ np.linalg.inv(view0.world_to_camera)
        return DepthBatch(
            image0=torch.from_numpy(image0)[None],
            image1=torch.from_numpy(image1)[None],
            depth0=torch.from_numpy(depth0),
            depth1=torch.from_numpy(depth1),
            K0=torch.from_numpy(K0),
            K1=torch.from_numpy(K1),
            T_0to1=torch.from_numpy(T_0to1),
        )


def loftr_training_set(config: TrainConfig) -> DepthPairDataset:
    """The MegaDepth or ScanNet training set a config describes."""
    if config.data_root is None:
        raise ConfigError(f"data {config.data!r} needs data_root (the LoFTR data folder)")
    if config.data == "megadepth":
        scenes = read_megadepth_scenes(config.data_root, config.scene_list, config.min_overlap)
    else:
        scenes = read_scannet_scenes(config.data_root, config.scene_list)
    return DepthPairDataset(scenes, config.image_size, config.pairs_per_scene, config.seed)
