"""Image pairs related by a known homography, synthesised from any images (or from none).

Each pair shows one source image through two random perspective views: a shared crop of the
source, then per view a random rotation, scale, shift and corner perturbation. The homography
between the views is exact, so every pixel has ground truth, and the valid masks say which pixels
show source content (outside it the views are black). Photometric augmentation is drawn per view.

Without source images, :func:`edm_ros.data.synthetic.textured_image` paints a random texture
(multi-scale noise and shapes) that is distinctive at the 8-pixel scale EDM matches at; that gives
a dataset for tests and smoke runs that needs no files.

Pixel convention: 0-based OpenCV pixels, integer coordinates at pixel centres; ``x1 ~ H_0to1 x0``.
numpy and OpenCV only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edm_ros.data.datasets import IMAGE_SUFFIXES
from edm_ros.data.images import read_grey
from edm_ros.data.textures import textured_image
from edm_ros.errors import ConfigError, InputError

#: Procedural sources are this much larger than the views, so the views can rotate and shift.
PROCEDURAL_SOURCE_SCALE = 1.5
#: Draws of a view pair before the overlap requirement gives up and keeps the last draw.
MAX_WARP_DRAWS = 20


@dataclass(frozen=True)
class WarpRange:
    """How far each view departs from the shared crop (uniform draws in these ranges).

    Both views are drawn, so the relative change between them spans twice the rotation and
    shift and the square of the scale range: the defaults give relative in-plane rotations up to
    ±45° and relative scales from 0.5 to 2, the range a robot camera sees between two frames.
    """

    max_rotation_deg: float = 22.5  # in-plane rotation of each view
    scale_range: tuple[float, float] = (0.71, 1.41)  # zoom of each view (>1: closer), log-uniform
    max_shift: float = 0.2  # translation of each view, fraction of the crop side
    max_perspective: float = 0.15  # each corner moves up to this fraction of the crop side
    min_overlap: float = 0.25  # fraction of image 0 that must be visible in image 1

    def __post_init__(self) -> None:
        low, high = self.scale_range
        if not 0.0 < low <= high:
            raise ConfigError(f"scale_range must be 0 < low <= high, got {self.scale_range}")
        if not (0.0 <= self.max_shift < 1.0 and 0.0 <= self.max_perspective < 0.5):
            raise ConfigError(
                f"max_shift must be in [0, 1) and max_perspective in [0, 0.5), got "
                f"{self.max_shift} and {self.max_perspective}"
            )
        if not 0.0 <= self.min_overlap < 1.0:
            raise ConfigError(f"min_overlap must be in [0, 1), got {self.min_overlap}")


@dataclass(frozen=True)
class PhotometricRange:
    """Per-view photometric augmentation: what differs between two frames of a robot camera.

    Each view draws its own values, so the two views of a pair also differ in exposure, blur,
    noise and compression. Gains and gamma are uniform draws in their ranges, the exposure gain
    log-uniform; each probability is per view.
    """

    exposure: tuple[float, float] = (0.5, 2.0)  # multiplicative gain; bright parts saturate
    brightness: float = 0.1  # additive offset, fraction of the grey range
    contrast: tuple[float, float] = (0.6, 1.4)  # gain around mid-grey
    gamma: tuple[float, float] = (0.6, 1.6)
    vignetting_probability: float = 0.3
    max_vignetting: float = 0.5  # fraction of the brightness lost in the corners
    blur_probability: float = 0.25
    max_blur_sigma: float = 1.5  # Gaussian blur (defocus), pixels
    motion_blur_probability: float = 0.2
    max_motion_blur_px: int = 9  # length of a straight motion-blur streak
    max_noise_std: float = 8.0  # Gaussian sensor noise, grey levels
    jpeg_probability: float = 0.4
    jpeg_quality: tuple[int, int] = (30, 95)

    def __post_init__(self) -> None:
        probabilities = (
            self.vignetting_probability,
            self.blur_probability,
            self.motion_blur_probability,
            self.jpeg_probability,
        )
        if not all(0.0 <= p <= 1.0 for p in probabilities):
            raise ConfigError(f"probabilities must lie in [0, 1], got {probabilities}")
        if not 0 < self.exposure[0] <= self.exposure[1] or not self.jpeg_quality[0] >= 1:
            raise ConfigError(
                f"need 0 < exposure low <= high and JPEG quality >= 1, got {self.exposure}, "
                f"{self.jpeg_quality}"
            )


@dataclass(frozen=True)
class WarpedPair:
    """Two views of one image and the exact homography between them."""

    image0: np.ndarray  # [H, W] uint8
    image1: np.ndarray  # [H, W] uint8
    valid0: np.ndarray  # [H, W] bool: the pixel shows source content
    valid1: np.ndarray  # [H, W] bool
    H_0to1: np.ndarray  # [3, 3] float64, x1 ~ H_0to1 x0, H[2, 2] = 1


def list_images(folder: str | Path, exclude: Sequence[str] = ()) -> list[Path]:
    """Image files (png, jpg, ppm, pgm) under ``folder``, recursively, sorted.

    Args:
        folder: where to look.
        exclude: sub-folders of ``folder`` to leave out (e.g. views held aside for validation).

    Raises:
        InputError: the folder does not exist or holds no images.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: not a folder; expected a folder of images")
    left_out = [folder / name for name in exclude]
    paths = sorted(
        p
        for p in folder.rglob("*")
        if p.suffix.lower() in IMAGE_SUFFIXES and not any(p.is_relative_to(d) for d in left_out)
    )
    if not paths:
        raise InputError(
            f"{folder}: no images found (looked for {', '.join(IMAGE_SUFFIXES)}, recursively)"
        )
    return paths


def check_output_size(output_size: tuple[int, int]) -> tuple[int, int]:
    """(W, H) of generated views as ints; raises ConfigError below 16x16 pixels."""
    width, height = output_size
    if width < 16 or height < 16:
        raise ConfigError(f"output_size must be at least 16x16 pixels, got {output_size}")
    return int(width), int(height)


def random_view(
    rng: np.random.Generator,
    crop_corners: np.ndarray,
    output_size: tuple[int, int],
    warp: WarpRange,
) -> np.ndarray:
    """A random homography from view pixels to source pixels around a crop.

    Args:
        rng: random source.
        crop_corners: [4, 2] source pixels of the unwarped view's corners (TL, TR, BR, BL).
        output_size: (W, H) of the view.
        warp: the ranges to draw from.

    Returns:
        [3, 3] float64 mapping view pixels to source pixels.
    """
    centre = crop_corners.mean(axis=0)
    side = float(np.linalg.norm(crop_corners[1] - crop_corners[0]))
    angle = np.deg2rad(rng.uniform(-warp.max_rotation_deg, warp.max_rotation_deg))
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    zoom = np.exp(rng.uniform(*np.log(warp.scale_range)))
    shift = rng.uniform(-warp.max_shift, warp.max_shift, size=2) * side
    jitter = rng.uniform(-warp.max_perspective, warp.max_perspective, size=(4, 2)) * side
    corners = (crop_corners - centre) @ rotation.T / zoom + centre + shift + jitter
    width, height = output_size
    view_corners = np.array([[0, 0], [width, 0], [width, height], [0, height]], np.float32)
    return cv2.getPerspectiveTransform(view_corners, corners.astype(np.float32)).astype(np.float64)


def render_view(
    source: np.ndarray, view_to_source: np.ndarray, output_size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Render a view of ``source`` and its valid mask.

    Args:
        source: [Hs, Ws] uint8.
        view_to_source: [3, 3] view pixels -> source pixels.
        output_size: (W, H).

    Returns:
        ([H, W] uint8 view, black outside the source; [H, W] bool valid mask: the pixel's source
        position and its bilinear neighbours lie inside the source).
    """
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    view = cv2.warpPerspective(source, view_to_source, output_size, flags=flags, borderValue=0)
    full = np.full(source.shape, 255, np.uint8)
    coverage = cv2.warpPerspective(full, view_to_source, output_size, flags=flags, borderValue=0)
    return view, coverage == 255


def photometric_augmentation(
    image: np.ndarray, rng: np.random.Generator, photometric: PhotometricRange
) -> np.ndarray:
    """One view's photometric changes, in the order a camera applies them.

    Exposure and vignetting act on the light, then contrast, brightness and gamma on the
    response, then defocus or motion blur, sensor noise, 8-bit quantisation and JPEG.

    Args:
        image: [H, W] uint8 grey.
        rng: random source.
        photometric: the ranges to draw from.

    Returns:
        [H, W] uint8 grey.
    """
    grey: np.ndarray = image.astype(np.float32) / 255.0
    grey *= np.exp(rng.uniform(*np.log(photometric.exposure)))
    if rng.random() < photometric.vignetting_probability:
        grey *= _vignetting(grey.shape, rng.uniform(0.0, photometric.max_vignetting))
    grey = np.clip(grey, 0.0, 1.0)
    grey = np.clip((grey - 0.5) * rng.uniform(*photometric.contrast) + 0.5, 0.0, 1.0)
    grey = np.clip(grey + rng.uniform(-photometric.brightness, photometric.brightness), 0.0, 1.0)
    grey = grey ** rng.uniform(*photometric.gamma)
    if rng.random() < photometric.blur_probability:
        grey = cv2.GaussianBlur(grey, (0, 0), rng.uniform(0.3, photometric.max_blur_sigma))
    if rng.random() < photometric.motion_blur_probability:
        length = int(rng.integers(3, max(4, photometric.max_motion_blur_px + 1)))
        grey = cv2.filter2D(grey, -1, _motion_kernel(length, rng.uniform(0.0, 180.0)))
    noise_std = rng.uniform(0.0, photometric.max_noise_std) / 255.0
    grey = grey + rng.normal(0.0, noise_std, size=grey.shape).astype(np.float32)
    out: np.ndarray = np.clip(np.round(grey * 255.0), 0, 255).astype(np.uint8)
    if rng.random() < photometric.jpeg_probability:
        quality = int(rng.integers(photometric.jpeg_quality[0], photometric.jpeg_quality[1] + 1))
        _, encoded = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, quality])
        decoded = cv2.imdecode(encoded, cv2.IMREAD_GRAYSCALE)
        assert decoded is not None, "OpenCV decodes the JPEG it has just encoded"
        out = decoded
    return out


def _vignetting(shape: tuple[int, ...], strength: float) -> np.ndarray:
    """[H, W] gain falling as cos^4-like from 1 at the centre to 1 - strength in the corners."""
    height, width = shape[:2]
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    radius2 = ((xs - (width - 1) / 2) ** 2 + (ys - (height - 1) / 2) ** 2) / (
        ((width - 1) / 2) ** 2 + ((height - 1) / 2) ** 2
    )
    return 1.0 - strength * radius2**2


def _motion_kernel(length: int, angle_deg: float) -> np.ndarray:
    """A normalised straight streak of ``length`` pixels at ``angle_deg``."""
    kernel: np.ndarray = np.zeros((length, length), np.float32)
    kernel[length // 2, :] = 1.0
    centre = ((length - 1) / 2, (length - 1) / 2)
    rotation = cv2.getRotationMatrix2D(centre, angle_deg, 1.0)
    kernel = cv2.warpAffine(kernel, rotation, (length, length), flags=cv2.INTER_LINEAR)
    return kernel / kernel.sum()


class HomographyPairGenerator:
    """Random homography pairs from a list of images, or from procedural textures.

    Example:
        >>> generator = HomographyPairGenerator(list_images("my_images"), (320, 256))
        >>> pair = generator.sample(np.random.default_rng(0))
    """

    def __init__(
        self,
        sources: Sequence[Path] | None,
        output_size: tuple[int, int],
        warp: WarpRange | None = None,
        photometric: PhotometricRange | None = PhotometricRange(),
    ) -> None:
        """Args:
        sources: image files to draw from; None or empty = procedural textures.
        output_size: (W, H) of both views, pixels.
        warp: view ranges (default :class:`WarpRange`).
        photometric: per-view augmentation; None = none.
        """
        self.sources = list(sources or [])
        self.output_size = check_output_size(output_size)
        self.warp = warp or WarpRange()
        self.photometric = photometric

    def sample(self, rng: np.random.Generator) -> WarpedPair:
        """Draw one pair; the pair is a function of ``rng``'s state."""
        source = self._source(rng)
        crop = self._crop(rng, source.shape[1], source.shape[0])
        for _ in range(MAX_WARP_DRAWS):
            to_source0 = random_view(rng, crop, self.output_size, self.warp)
            to_source1 = random_view(rng, crop, self.output_size, self.warp)
            H_0to1 = np.linalg.inv(to_source1) @ to_source0
            H_0to1 /= H_0to1[2, 2]
            image0, valid0 = render_view(source, to_source0, self.output_size)
            image1, valid1 = render_view(source, to_source1, self.output_size)
            if visible_fraction(valid0, valid1, H_0to1) >= self.warp.min_overlap:
                break
        if self.photometric is not None:
            image0 = photometric_augmentation(image0, rng, self.photometric)
            image1 = photometric_augmentation(image1, rng, self.photometric)
        return WarpedPair(image0, image1, valid0, valid1, H_0to1)

    def _source(self, rng: np.random.Generator) -> np.ndarray:
        if not self.sources:
            width, height = self.output_size
            size = (int(width * PROCEDURAL_SOURCE_SCALE), int(height * PROCEDURAL_SOURCE_SCALE))
            return textured_image(*size, seed=int(rng.integers(2**31)))
        return read_grey(self.sources[int(rng.integers(len(self.sources)))])

    def _crop(self, rng: np.random.Generator, source_width: int, source_height: int) -> np.ndarray:
        """Corners (TL, TR, BR, BL) of a random crop with the views' aspect ratio."""
        aspect = self.output_size[0] / self.output_size[1]
        crop_width = min(source_width, source_height * aspect) * rng.uniform(0.55, 0.8)
        crop_height = crop_width / aspect
        left = rng.uniform(0, source_width - crop_width)
        top = rng.uniform(0, source_height - crop_height)
        return np.array(
            [
                [left, top],
                [left + crop_width, top],
                [left + crop_width, top + crop_height],
                [left, top + crop_height],
            ]
        )


def visible_fraction(valid0: np.ndarray, valid1: np.ndarray, H_0to1: np.ndarray) -> float:
    """Fraction of image 0's pixels (sampled every 4 px) whose source content is seen in image 1."""
    rows, cols = np.mgrid[0 : valid0.shape[0] : 4, 0 : valid0.shape[1] : 4]
    points = np.stack([cols.ravel(), rows.ravel()], axis=-1).astype(np.float64)
    warped = cv2.perspectiveTransform(points[:, None, :], H_0to1)[:, 0]
    x, y = np.round(warped[:, 0]).astype(int), np.round(warped[:, 1]).astype(int)
    inside = (x >= 0) & (x < valid1.shape[1]) & (y >= 0) & (y < valid1.shape[0])
    seen = np.zeros(len(points), dtype=bool)
    seen[inside] = valid1[y[inside], x[inside]]
    return float(np.mean(seen & valid0[rows.ravel(), cols.ravel()]))
