"""Procedural test scenes with exact geometry: textured planes seen by pinhole cameras.

Nothing is read from disk: a seeded texture generator (`edm_ros.data.textures`) and a
renderer that warps textures onto planes with `cv2.warpPerspective` and keeps the nearest plane per
pixel. Every rendered view also returns its depth map, so correspondences between views are exact.

Frames: the world frame is an optical frame (x right, y down, z forward); camera poses are
`T_world_cam` ([4, 4], camera in world), relative poses `T_a_b` (camera b in camera a's frame), the
same convention as `edm_ros.geometry.pose.RelativePose`. Distances are metres, images uint8 grey.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from edm_ros.data.textures import textured_image

_OCCLUSION_TOLERANCE = 0.02  # relative depth difference still counted as the same surface
ENDLESS_TILE_PX = 256  # texture tile of the endless room surfaces (mirrored beyond it)


@dataclass(frozen=True)
class TexturedPlane:
    """A textured rectangle (or an endless mirrored wall) in the world.

    Attributes:
        origin_m: [3] world position of the texture's pixel (0, 0).
        axis_x_m: [3] world step of one texture pixel along its columns, metres.
        axis_y_m: [3] world step of one texture pixel along its rows, metres.
        texture: uint8 [h, w] grey texture.
        bounded: False: the texture repeats mirrored beyond its edges (a background wall).
    """

    origin_m: np.ndarray
    axis_x_m: np.ndarray
    axis_y_m: np.ndarray
    texture: np.ndarray
    bounded: bool = True


@dataclass(frozen=True)
class SyntheticPair:
    """Two views of a scene with ground truth.

    Attributes:
        image0: uint8 [H, W] reference view.
        image1: uint8 [H, W] current view.
        K: [3, 3] intrinsics of both views, pixels.
        rotation: [3, 3] R_0_1, orientation of camera 1 in camera 0's frame.
        translation: [3] t_0_1, position of camera 1 in camera 0's frame, metres.
        depth0: [H, W] float64 depth (z) of image0, metres; inf where nothing was drawn.
        depth1: [H, W] float64 depth of image1.
        points0: [M, 2] float64 integer pixel positions on a grid in image0, visible in image1.
        points1: [M, 2] float64 their exact positions in image1 (sub-pixel).
    """

    image0: np.ndarray
    image1: np.ndarray
    K: np.ndarray
    rotation: np.ndarray
    translation: np.ndarray
    depth0: np.ndarray
    depth1: np.ndarray
    points0: np.ndarray
    points1: np.ndarray


@dataclass(frozen=True)
class RenderedStereoFrame:
    """One rectified stereo frame of a sequence.

    Attributes:
        left: uint8 [H, W] left image.
        right: uint8 [H, W] right image.
        depth_left: [H, W] float64 depth of the left image, metres (inf: nothing drawn).
        depth_right: [H, W] float64 depth of the right image.
        pose_world_left: [4, 4] T_world_left, the left camera in the world frame.
    """

    left: np.ndarray
    right: np.ndarray
    depth_left: np.ndarray
    depth_right: np.ndarray
    pose_world_left: np.ndarray


@dataclass(frozen=True)
class StereoSequence:
    """A rectified stereo camera moving in front of textured planes.

    Attributes:
        frames: The frames in time order.
        K: [3, 3] rectified intrinsics of both cameras (CameraInfo.k of rectified images).
        projection_left: [3, 4] CameraInfo.p of the left camera (Tx = 0).
        projection_right: [3, 4] CameraInfo.p of the right camera (Tx = -fx * baseline).
        baseline_m: Distance between the cameras; the right one is at +x of the left.
        width: Image width, pixels.
        height: Image height, pixels.
    """

    frames: tuple[RenderedStereoFrame, ...]
    K: np.ndarray
    projection_left: np.ndarray
    projection_right: np.ndarray
    baseline_m: float
    width: int
    height: int

    def relative_pose(self, ref: int, cur: int) -> tuple[np.ndarray, np.ndarray]:
        """(R_ref_cur [3, 3], t_ref_cur [3] metres): left camera of frame `cur` in that of `ref`."""
        world_ref, world_cur = self.frames[ref].pose_world_left, self.frames[cur].pose_world_left
        relative = np.linalg.inv(world_ref) @ world_cur
        return relative[:3, :3], relative[:3, 3]


def default_intrinsics(width: int = 640, height: int = 480) -> np.ndarray:
    """[3, 3] pinhole intrinsics with a 64 deg horizontal field of view, centred."""
    focal_px = 0.8 * width
    return np.array(
        [[focal_px, 0.0, (width - 1) / 2], [0.0, focal_px, (height - 1) / 2], [0.0, 0.0, 1.0]]
    )


def pose_matrix(
    rotation_deg: Sequence[float] | np.ndarray, translation_m: Sequence[float] | np.ndarray
) -> np.ndarray:
    """[4, 4] rigid transform from a rotation vector (axis * angle, degrees) and a translation."""
    transform = np.eye(4)
    transform[:3, :3] = cv2.Rodrigues(np.radians(np.asarray(rotation_deg, np.float64)))[0]
    transform[:3, 3] = np.asarray(translation_m, np.float64)
    return transform


def _plane(
    centre_m: Sequence[float],
    yaw_deg: float,
    size_px: tuple[int, int],
    texel_m: float,
    seed: int,
    bounded: bool = True,
) -> TexturedPlane:
    """A vertical plane facing -z (towards a camera at the origin), turned by yaw about y."""
    yaw = np.radians(yaw_deg)
    axis_x = texel_m * np.array([np.cos(yaw), 0.0, -np.sin(yaw)])
    axis_y = texel_m * np.array([0.0, 1.0, 0.0])
    width, height = size_px
    origin = np.asarray(centre_m, np.float64) - axis_x * (width - 1) / 2 - axis_y * (height - 1) / 2
    return TexturedPlane(origin, axis_x, axis_y, textured_image(width, height, seed), bounded)


def default_scene(seed: int = 0) -> tuple[TexturedPlane, ...]:
    """A mirrored wall 6 m ahead of the world origin and three tilted panels 2.5-4.5 m away."""
    return (
        _plane((0.0, 0.0, 6.0), 0.0, (1024, 768), 0.008, seed, bounded=False),
        _plane((-1.0, -0.3, 3.0), 30.0, (256, 320), 0.005, seed + 1),
        _plane((1.1, 0.4, 4.0), -25.0, (320, 256), 0.005, seed + 2),
        _plane((0.2, -0.6, 2.5), 10.0, (224, 160), 0.004, seed + 3),
    )


def textured_rectangle(
    corner_m: np.ndarray,
    edge_x_m: np.ndarray,
    edge_y_m: np.ndarray,
    texture: np.ndarray,
    bounded: bool = True,
) -> TexturedPlane:
    """The rectangle ``corner + a·edge_x + b·edge_y`` (a, b in [0, 1]) covered by ``texture``.

    Args:
        corner_m: [3] world position of the texture's pixel (0, 0).
        edge_x_m: [3] world vector along the texture's columns (its whole width).
        edge_y_m: [3] world vector along its rows (its whole height).
        texture: uint8 [h, w] grey.
        bounded: False: the texture repeats mirrored beyond the rectangle (an endless surface).
    """
    height, width = texture.shape
    return TexturedPlane(
        np.asarray(corner_m, np.float64),
        np.asarray(edge_x_m, np.float64) / max(width - 1, 1),
        np.asarray(edge_y_m, np.float64) / max(height - 1, 1),
        texture,
        bounded,
    )


def room_scene(
    rng: np.random.Generator,
    texture: Callable[[int, int], np.ndarray],
    texel_at_1m: float,
) -> tuple[TexturedPlane, ...]:
    """A room around the world origin: floor, ceiling, four walls and 2-6 boxes on the floor.

    Walls, floor and ceiling are endless planes with mirrored textures, so every view ray from
    inside hits something; the boxes stand 1.2-7 m ahead at random positions and turns, and give
    occlusions and depth discontinuities.

    Args:
        rng: random source.
        texture: ``texture(width_px, height_px)`` returns a uint8 [height_px, width_px] texture.
        texel_at_1m: texture resolution, metres per texel on a surface 1 m away; farther surfaces
            get proportionally coarser textures (about one texel per image pixel).

    Returns:
        The planes, in the world frame (x right, y down, z forward).
    """
    half_width = rng.uniform(1.5, 4.0)
    floor_y, ceiling_y = rng.uniform(0.6, 1.5), -rng.uniform(1.0, 2.5)
    far_z, near_z = rng.uniform(5.0, 12.0), -rng.uniform(1.0, 3.0)
    x, y, z = np.eye(3)

    def endless(corner: np.ndarray, edge_x: np.ndarray, edge_y: np.ndarray) -> TexturedPlane:
        distance = float(np.linalg.norm(corner + (edge_x + edge_y) / 2))
        tile = ENDLESS_TILE_PX * texel_at_1m * max(distance, 1.0)  # metres, scaled by distance
        u, v = edge_x / np.linalg.norm(edge_x), edge_y / np.linalg.norm(edge_y)
        return textured_rectangle(
            corner, u * tile, v * tile, texture(ENDLESS_TILE_PX, ENDLESS_TILE_PX), bounded=False
        )

    planes = [
        endless(np.array([-half_width, floor_y, 0.5]), x, z),  # floor
        endless(np.array([-half_width, ceiling_y, 0.5]), x, z),  # ceiling
        endless(np.array([-half_width, ceiling_y, far_z]), x, y),  # far wall
        endless(np.array([-half_width, ceiling_y, near_z]), x, y),  # wall behind the start
        endless(np.array([-half_width, ceiling_y, 0.0]), z, y),  # left wall
        endless(np.array([half_width, ceiling_y, 0.0]), z, y),  # right wall
    ]
    for _ in range(int(rng.integers(2, 7))):
        planes += _box(rng, texture, texel_at_1m, half_width, floor_y, min(7.0, far_z - 1.0))
    return tuple(planes)


def _box(
    rng: np.random.Generator,
    texture: Callable[[int, int], np.ndarray],
    texel_at_1m: float,
    half_width: float,
    floor_y: float,
    max_z: float,
) -> list[TexturedPlane]:
    """The four sides and the top of a box standing on the floor, each with its own texture."""
    size = rng.uniform([0.3, 0.2, 0.3], [1.4, min(1.6, floor_y + 0.8), 1.4])  # width, height, depth
    centre = np.array(
        [rng.uniform(-half_width + 0.5, half_width - 0.5), floor_y, rng.uniform(1.2, max_z)]
    )
    yaw = rng.uniform(-np.pi / 3, np.pi / 3)
    along = np.array([np.cos(yaw), 0.0, -np.sin(yaw)]) * size[0]
    across = np.array([np.sin(yaw), 0.0, np.cos(yaw)]) * size[2]
    up = np.array([0.0, -size[1], 0.0])
    base = centre - along / 2 - across / 2  # a bottom corner
    faces = [
        (base + up, along, -up),  # front: corner at the top, rows running down
        (base + across + up, along, -up),  # back
        (base + up, across, -up),  # one side
        (base + along + up, across, -up),  # the other side
        (base + up, along, across),  # top
    ]
    planes = []
    for corner, edge_x, edge_y in faces:
        width_m, height_m = float(np.linalg.norm(edge_x)), float(np.linalg.norm(edge_y))
        texel = texel_at_1m * max(float(np.linalg.norm(corner)), 1.0)
        columns = max(8, min(1024, round(width_m / texel)))
        rows = max(8, min(1024, round(height_m / texel)))
        planes.append(textured_rectangle(corner, edge_x, edge_y, texture(columns, rows)))
    return planes


def render_view(
    scene: Sequence[TexturedPlane],
    K: np.ndarray,
    pose_world_cam: np.ndarray,
    width: int,
    height: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Renders a scene with a pinhole camera (no lens distortion), nearest plane per pixel.

    Args:
        scene: The planes.
        K: [3, 3] intrinsics, pixels.
        pose_world_cam: [4, 4] T_world_cam, the camera in the world frame.
        width: Image width, pixels.
        height: Image height, pixels.

    Returns:
        (image uint8 [height, width], depth float64 [height, width] metres, inf where empty).
    """
    cam_world = np.linalg.inv(pose_world_cam)
    rotation, translation = cam_world[:3, :3], cam_world[:3, 3]
    xs, ys = np.meshgrid(np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64))
    rays = np.stack([xs, ys, np.ones_like(xs)], -1) @ np.linalg.inv(K).T  # [H, W, 3], z = 1
    image = np.zeros((height, width), np.uint8)
    depth = np.full((height, width), np.inf)
    for plane in scene:
        columns = np.column_stack(
            [
                rotation @ plane.axis_x_m,
                rotation @ plane.axis_y_m,
                rotation @ plane.origin_m + translation,
            ]
        )
        homography = K @ columns  # texture pixel (u, v, 1) -> image pixel
        normal = np.cross(columns[:, 0], columns[:, 1])
        with np.errstate(divide="ignore", invalid="ignore"):
            plane_depth = (normal @ columns[:, 2]) / (rays @ normal)  # [H, W]
            covered = np.isfinite(plane_depth) & (plane_depth > 0) & (plane_depth < depth)
        if plane.bounded:
            covered &= _inside_texture(homography, xs, ys, plane.texture.shape)
        border = cv2.BORDER_CONSTANT if plane.bounded else cv2.BORDER_REFLECT_101
        warped = cv2.warpPerspective(
            plane.texture, homography, (width, height), flags=cv2.INTER_LINEAR, borderMode=border
        )
        image[covered] = warped[covered]
        depth[covered] = plane_depth[covered]
    return image, depth


def _inside_texture(
    homography: np.ndarray, xs: np.ndarray, ys: np.ndarray, texture_shape: tuple[int, ...]
) -> np.ndarray:
    """[H, W] bool: the image pixel maps inside the texture rectangle."""
    pixels = np.stack([xs, ys, np.ones_like(xs)], -1) @ np.linalg.inv(homography).T
    with np.errstate(divide="ignore", invalid="ignore"):
        u, v = pixels[..., 0] / pixels[..., 2], pixels[..., 1] / pixels[..., 2]
    return (u >= 0) & (u <= texture_shape[1] - 1) & (v >= 0) & (v <= texture_shape[0] - 1)


def transfer_points(
    points_px: np.ndarray,
    depth_m: np.ndarray,
    K: np.ndarray,
    pose_this_other: np.ndarray,
    depth_other_m: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Moves pixels of one view into another view through the depth map.

    Args:
        points_px: [N, 2] (x, y) pixels of this view; the depth is read at the nearest pixel,
            so integer positions give exact correspondences.
        depth_m: [H, W] depth map of this view, metres.
        K: [3, 3] intrinsics of both views.
        pose_this_other: [4, 4] T_this_other, the other camera in this camera's frame.
        depth_other_m: [H, W] depth map of the other view for the occlusion test, or None.

    Returns:
        (points_other_px [N, 2] float64, visible [N] bool): visible means a finite depth here, in
        front of and inside the other view, and not hidden there.
    """
    height, width = depth_m.shape
    points = np.asarray(points_px, np.float64).reshape(-1, 2)
    columns = np.clip(np.rint(points[:, 0]).astype(int), 0, width - 1)
    rows = np.clip(np.rint(points[:, 1]).astype(int), 0, height - 1)
    depth = depth_m[rows, columns]
    finite = np.isfinite(depth)
    rays = np.column_stack([points, np.ones(len(points))]) @ np.linalg.inv(K).T
    points_this = rays * np.where(finite, depth, 1.0)[:, None]
    other_this = np.linalg.inv(pose_this_other)
    points_other = points_this @ other_this[:3, :3].T + other_this[:3, 3]
    in_front = points_other[:, 2] > 1e-6
    projected = points_other @ K.T
    pixels = projected[:, :2] / np.where(in_front, projected[:, 2], 1.0)[:, None]
    inside = (
        (pixels[:, 0] >= 0)
        & (pixels[:, 0] <= width - 1)
        & (pixels[:, 1] >= 0)
        & (pixels[:, 1] <= height - 1)
    )
    visible = finite & in_front & inside
    if depth_other_m is not None:
        seen = depth_other_m[
            np.rint(pixels[visible, 1]).astype(int), np.rint(pixels[visible, 0]).astype(int)
        ]
        visible[visible] = np.abs(seen - points_other[visible, 2]) <= (
            _OCCLUSION_TOLERANCE * points_other[visible, 2]
        )
    return pixels, visible


def grid_points(width: int, height: int, step_px: int, offset_px: int = 0) -> np.ndarray:
    """[M, 2] float64 integer pixel positions on a regular grid, `offset_px` from the border."""
    start = offset_px + step_px // 2
    xs, ys = np.meshgrid(np.arange(start, width, step_px), np.arange(start, height, step_px))
    return np.column_stack([xs.ravel(), ys.ravel()]).astype(np.float64)


def synthetic_pair(
    width: int = 640,
    height: int = 480,
    *,
    rotation_deg: Sequence[float] = (1.0, -4.0, 2.0),
    translation_m: Sequence[float] = (0.3, -0.05, 0.15),
    seed: int = 0,
    grid_step_px: int = 16,
) -> SyntheticPair:
    """Renders the default scene from two poses: camera 0 at the world origin, camera 1 at T_0_1.

    Args:
        width: Image width, pixels (any size; K scales with it).
        height: Image height, pixels.
        rotation_deg: Rotation vector of R_0_1 (axis * angle), degrees.
        translation_m: t_0_1, camera 1's position in camera 0's frame, metres.
        seed: Texture seed.
        grid_step_px: Spacing of the exact correspondences `points0`.

    Returns:
        The pair with its ground truth.
    """
    intrinsics = default_intrinsics(width, height)
    scene = default_scene(seed)
    pose_0_1 = pose_matrix(rotation_deg, translation_m)
    image0, depth0 = render_view(scene, intrinsics, np.eye(4), width, height)
    image1, depth1 = render_view(scene, intrinsics, pose_0_1, width, height)
    grid = grid_points(width, height, grid_step_px)
    points1, visible = transfer_points(grid, depth0, intrinsics, pose_0_1, depth1)
    return SyntheticPair(
        image0,
        image1,
        intrinsics,
        pose_0_1[:3, :3],
        pose_0_1[:3, 3],
        depth0,
        depth1,
        grid[visible],
        points1[visible],
    )


def stereo_sequence(
    num_frames: int = 5,
    width: int = 640,
    height: int = 480,
    *,
    baseline_m: float = 0.12,
    step_m: Sequence[float] = (0.06, 0.01, 0.05),
    step_rotation_deg: Sequence[float] = (0.3, -1.0, 0.2),
    seed: int = 0,
) -> StereoSequence:
    """A rectified stereo camera moving by a constant step per frame in front of the scene.

    Args:
        num_frames: Number of frames.
        width: Image width, pixels.
        height: Image height, pixels.
        baseline_m: Stereo baseline; the right camera is at +x of the left camera.
        step_m: Left-camera position change per frame (world frame), metres.
        step_rotation_deg: Rotation vector added per frame, degrees.
        seed: Texture seed.

    Returns:
        The sequence, with CameraInfo-style K and P and the ground-truth left-camera poses.
    """
    intrinsics = default_intrinsics(width, height)
    scene = default_scene(seed)
    left_right = pose_matrix((0.0, 0.0, 0.0), (baseline_m, 0.0, 0.0))
    frames = []
    for index in range(num_frames):
        pose_world_left = pose_matrix(
            np.multiply(step_rotation_deg, index), np.multiply(step_m, index)
        )
        left, depth_left = render_view(scene, intrinsics, pose_world_left, width, height)
        right, depth_right = render_view(
            scene, intrinsics, pose_world_left @ left_right, width, height
        )
        frames.append(RenderedStereoFrame(left, right, depth_left, depth_right, pose_world_left))
    projection_left = np.hstack([intrinsics, np.zeros((3, 1))])
    projection_right = projection_left.copy()
    projection_right[0, 3] = -intrinsics[0, 0] * baseline_m
    return StereoSequence(
        tuple(frames), intrinsics, projection_left, projection_right, baseline_m, width, height
    )
