"""Image pairs with parallax: rooms of photo-textured planes seen from two camera poses.

Homography pairs teach matching across viewpoint, scale and light, but never show what a moving
robot sees most: surfaces at different depths moving differently, occlusions, depth edges. Here a
random room (floor, walls, boxes; :func:`edm_ros.data.synthetic.room_scene`) is textured with
crops of real photographs and rendered from two camera poses with the renderer of
:mod:`edm_ros.data.synthetic`, which returns exact depth for both views. Each view then gets the
photometric augmentation of the homography pairs.

Frames and conventions as in :mod:`edm_ros.data.synthetic`: camera 0 defines the frame of the
pair, ``rotation``/``translation`` are camera 1 in camera 0's frame. numpy and OpenCV only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edm_ros.data.homography import (
    PhotometricRange,
    check_output_size,
    photometric_augmentation,
)
from edm_ros.data.images import read_grey
from edm_ros.data.synthetic import (
    SyntheticPair,
    grid_points,
    pose_matrix,
    render_view,
    room_scene,
    transfer_points,
)
from edm_ros.data.textures import textured_image
from edm_ros.errors import ConfigError

DEFAULT_PHOTOMETRIC = PhotometricRange()
#: Photographs one room draws its textures from (each read once per room).
PHOTOS_PER_ROOM = 4
#: Draws of camera 1 before the overlap requirement gives up and keeps the last draw.
MAX_POSE_DRAWS = 10
#: Overlap is measured on a grid of image 0 with this spacing, pixels.
OVERLAP_GRID_PX = 8


@dataclass(frozen=True)
class MotionRange:
    """Camera poses and lenses of the pairs (uniform draws in these ranges)."""

    focal_range: tuple[float, float] = (0.6, 1.1)  # focal length / image width
    start_rotation_deg: tuple[float, float, float] = (10.0, 25.0, 5.0)  # camera 0: pitch, yaw, roll
    translation_m: tuple[float, float] = (0.05, 0.8)  # length of camera 1's offset
    rotation_deg: tuple[float, float, float] = (8.0, 20.0, 5.0)  # camera 1 relative to camera 0
    min_overlap: float = 0.3  # fraction of image 0's grid visible in image 1
    min_depth_m: float = 0.3  # camera 1 must not sit inside or against a surface

    def __post_init__(self) -> None:
        low, high = self.translation_m
        if not 0.0 <= low <= high or not 0.0 < self.focal_range[0] <= self.focal_range[1]:
            raise ConfigError(
                f"need 0 <= translation low <= high and 0 < focal low <= high, got "
                f"{self.translation_m}, {self.focal_range}"
            )
        if not 0.0 <= self.min_overlap < 1.0:
            raise ConfigError(f"min_overlap must be in [0, 1), got {self.min_overlap}")


class ParallaxPairGenerator:
    """Random two-view renderings of photo-textured rooms, with depth and relative pose.

    Example:
        >>> generator = ParallaxPairGenerator(list_images("my_images"), (320, 256))
        >>> pair = generator.sample(np.random.default_rng(0))  # image0/1, K, depth0/1, pose
    """

    def __init__(
        self,
        sources: Sequence[Path] | None,
        output_size: tuple[int, int],
        motion: MotionRange | None = None,
        photometric: PhotometricRange | None = DEFAULT_PHOTOMETRIC,
    ) -> None:
        """Args:
        sources: photographs to texture the rooms with; None or empty = procedural textures.
        output_size: (W, H) of both views, pixels.
        motion: pose and lens ranges (default :class:`MotionRange`).
        photometric: per-view augmentation; None = none.
        """
        self.sources = list(sources or [])
        self.output_size = check_output_size(output_size)
        self.motion = motion or MotionRange()
        self.photometric = photometric

    def sample(self, rng: np.random.Generator) -> SyntheticPair:
        """Draw one pair; the pair is a function of ``rng``'s state.

        Returns:
            A :class:`SyntheticPair`: depth is inf where a view shows nothing (never inside a
            room); ``points0``/``points1`` are exact correspondences on an 8-pixel grid.
        """
        width, height = self.output_size
        motion = self.motion
        focal = width * rng.uniform(*motion.focal_range)
        K = np.array([[focal, 0.0, (width - 1) / 2], [0.0, focal, (height - 1) / 2], [0, 0, 1.0]])
        photos = self._photos(rng)

        def texture(columns: int, rows: int) -> np.ndarray:
            return _crop_texture(photos[int(rng.integers(len(photos)))], columns, rows, rng)

        scene = room_scene(rng, texture, texel_at_1m=rng.uniform(0.6, 1.6) / focal)
        world_cam0 = pose_matrix(_signed(rng, motion.start_rotation_deg), (0.0, 0.0, 0.0))
        image0, depth0 = render_view(scene, K, world_cam0, width, height)
        grid = grid_points(width, height, OVERLAP_GRID_PX)
        for _ in range(MAX_POSE_DRAWS):
            cam0_cam1 = self._relative_pose(rng)
            image1, depth1 = render_view(scene, K, world_cam0 @ cam0_cam1, width, height)
            points1, visible = transfer_points(grid, depth0, K, cam0_cam1, depth1)
            if np.mean(visible) >= motion.min_overlap and depth1.min() >= motion.min_depth_m:
                break
        if self.photometric is not None:
            image0 = photometric_augmentation(image0, rng, self.photometric)
            image1 = photometric_augmentation(image1, rng, self.photometric)
        return SyntheticPair(
            image0,
            image1,
            K,
            cam0_cam1[:3, :3],
            cam0_cam1[:3, 3],
            depth0,
            depth1,
            grid[visible],
            points1[visible],
        )

    def _photos(self, rng: np.random.Generator) -> list[np.ndarray]:
        if not self.sources:
            return [textured_image(512, 512, seed=int(rng.integers(2**31)))]
        picks = rng.integers(len(self.sources), size=PHOTOS_PER_ROOM)
        return [read_grey(self.sources[int(index)]) for index in picks]

    def _relative_pose(self, rng: np.random.Generator) -> np.ndarray:
        """[4, 4] camera 1 in camera 0's frame: mostly forward and sideways, little up or down."""
        direction = rng.normal(size=3) * np.array([1.0, 0.3, 1.0])
        direction /= max(float(np.linalg.norm(direction)), 1e-9)
        length = rng.uniform(*self.motion.translation_m)
        return pose_matrix(_signed(rng, self.motion.rotation_deg), direction * length)


def _signed(rng: np.random.Generator, limits: Sequence[float]) -> np.ndarray:
    """A rotation vector (degrees) with independent uniform draws in ±limits per axis."""
    return rng.uniform(-1.0, 1.0, size=3) * np.asarray(limits, np.float64)


def _crop_texture(
    photo: np.ndarray, columns: int, rows: int, rng: np.random.Generator
) -> np.ndarray:
    """A random crop of ``photo`` with the aspect of (columns, rows), resized to that size."""
    photo_rows, photo_columns = photo.shape
    aspect = columns / rows
    crop_columns = min(photo_columns, photo_rows * aspect) * rng.uniform(0.3, 1.0)
    crop_rows = crop_columns / aspect
    left = int(rng.uniform(0, photo_columns - crop_columns + 1))
    top = int(rng.uniform(0, photo_rows - crop_rows + 1))
    crop = photo[top : top + max(int(crop_rows), 1), left : left + max(int(crop_columns), 1)]
    shrinking = crop.shape[1] > columns
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return cv2.resize(crop, (columns, rows), interpolation=interpolation)
