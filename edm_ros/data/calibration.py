"""EuRoC and Kalibr camera calibration files, and EuRoC stereo folders as pose datasets.

Formats:

* EuRoC ``camN/sensor.yaml``: ``T_BS`` (camera to body, ``X_B = T_BS X_cam``), ``intrinsics:
  [fu, fv, cu, cv]``, ``distortion_model: radial-tangential``, ``distortion_coefficients``
  (OpenCV order k1 k2 p1 p2), ``resolution: [w, h]``. ``camN/data.csv``: ``timestamp_ns,filename``.
* Kalibr ``camchain.yaml``: ``camN: {intrinsics, distortion_model: radtan|equidistant,
  distortion_coeffs, resolution, T_cn_cnm1 (camN-1 to camN), T_cam_imu}``.

Reading YAML needs PyYAML (``pip install pyyaml``); it is imported on first use.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edm_ros.data.pairs import PoseDataset, PosePair
from edm_ros.errors import ConfigError, InputError

# Calibration-file names of distortion models -> ROS CameraInfo names.
_DISTORTION_MODELS = {
    "radial-tangential": "plumb_bob",
    "radtan": "plumb_bob",
    "plumb_bob": "plumb_bob",
    "equidistant": "equidistant",
    "none": "none",
}


@dataclass(frozen=True)
class CameraCalibration:
    """One calibrated camera of a rig.

    Attributes:
        K: [3, 3] intrinsics, pixels.
        distortion: [D] coefficients in OpenCV order; empty when none.
        distortion_model: "none", "plumb_bob" or "equidistant" (ROS CameraInfo names).
        width, height: image size the calibration holds for, pixels.
        T_body_cam: [4, 4] camera pose in the rig body frame (``X_body = T_body_cam X_cam``).
    """

    K: np.ndarray
    distortion: np.ndarray
    distortion_model: str
    width: int
    height: int
    T_body_cam: np.ndarray


def stereo_extrinsic(left: CameraCalibration, right: CameraCalibration) -> np.ndarray:
    """``T_0to1`` of a stereo pair: ``X_right = T X_left`` ([4, 4]; EuRoC: t ≈ (-0.11, 0, 0) m)."""
    return np.linalg.inv(right.T_body_cam) @ left.T_body_cam


def _load_yaml(path: Path) -> Any:
    try:
        import yaml
    except ImportError as err:
        raise ConfigError(f"{path}: reading YAML needs PyYAML: pip install pyyaml") from err
    try:
        # EuRoC files start with OpenCV's "%YAML:1.0" directive, which PyYAML rejects.
        return yaml.safe_load(path.read_text().replace("%YAML:1.0", "", 1))
    except (OSError, yaml.YAMLError) as err:
        raise InputError(f"{path}: not a readable YAML calibration ({err})") from err


def _camera(
    intrinsics: Any,
    coefficients: Any,
    model: Any,
    resolution: Any,
    T_body_cam: np.ndarray,
    where: str,
) -> CameraCalibration:
    if model not in _DISTORTION_MODELS:
        raise InputError(
            f"{where}: distortion model {model!r} not supported; expected one of "
            f"{sorted(_DISTORTION_MODELS)}"
        )
    try:
        fu, fv, cu, cv = (float(v) for v in intrinsics)
        width, height = (int(v) for v in resolution)
    except (TypeError, ValueError) as err:
        raise InputError(
            f"{where}: expected intrinsics [fu, fv, cu, cv] and resolution [w, h] ({err})"
        ) from err
    distortion = np.asarray(coefficients or [], dtype=np.float64)
    return CameraCalibration(
        K=np.array([[fu, 0.0, cu], [0.0, fv, cv], [0.0, 0.0, 1.0]]),
        distortion=distortion if np.any(distortion) else np.zeros(0),
        distortion_model=_DISTORTION_MODELS[model] if np.any(distortion) else "none",
        width=width,
        height=height,
        T_body_cam=T_body_cam,
    )


def read_euroc_camera(sensor_yaml: str | Path) -> CameraCalibration:
    """Read a EuRoC ``sensor.yaml`` (camera to body ``T_BS``, pinhole intrinsics, radtan).

    Args:
        sensor_yaml: the file.

    Returns:
        The calibration; ``T_body_cam`` is ``T_BS``.

    Raises:
        InputError: not a camera sensor file.
    """
    path = Path(sensor_yaml)
    content = _load_yaml(path)
    try:
        T_BS = np.asarray(content["T_BS"]["data"], dtype=np.float64).reshape(4, 4)
        return _camera(
            content["intrinsics"],
            content.get("distortion_coefficients"),
            content.get("distortion_model", "none"),
            content["resolution"],
            T_BS,
            str(path),
        )
    except (KeyError, TypeError, ValueError) as err:
        raise InputError(
            f"{path}: not a EuRoC camera sensor.yaml (needs T_BS, intrinsics, resolution; {err})"
        ) from err


def read_kalibr_camchain(camchain_yaml: str | Path) -> list[CameraCalibration]:
    """Read a Kalibr ``camchain.yaml`` (or ``camchain-imucam.yaml``).

    The body frame is the IMU when cam0 has ``T_cam_imu``, else cam0; later cameras chain through
    ``T_cn_cnm1`` (camN-1 to camN).

    Args:
        camchain_yaml: the file.

    Returns:
        The cameras in order cam0, cam1, ...

    Raises:
        InputError: missing keys, or a camera after cam0 without ``T_cn_cnm1``.
    """
    path = Path(camchain_yaml)
    content = _load_yaml(path)
    names = sorted((k for k in content or {} if k.startswith("cam")), key=lambda k: int(k[3:]))
    if not names:
        raise InputError(f"{path}: no cam0/cam1 entries; expected a Kalibr camchain.yaml")
    cameras: list[CameraCalibration] = []
    for name in names:
        entry, where = content[name], f"{path} {name}"
        if not cameras:
            T_cam_imu = entry.get("T_cam_imu")
            T_body_cam = np.linalg.inv(np.asarray(T_cam_imu)) if T_cam_imu else np.eye(4)
        elif "T_cn_cnm1" in entry:
            T_body_cam = cameras[-1].T_body_cam @ np.linalg.inv(np.asarray(entry["T_cn_cnm1"]))
        else:
            raise InputError(f"{where}: missing T_cn_cnm1 (pose of the previous camera in it)")
        cameras.append(
            _camera(
                entry.get("intrinsics"),
                entry.get("distortion_coeffs"),
                entry.get("distortion_model", "none"),
                entry.get("resolution"),
                T_body_cam,
                where,
            )
        )
    return cameras


def _euroc_root(folder: Path) -> Path:
    return folder / "mav0" if (folder / "mav0" / "cam0").is_dir() else folder


def is_euroc_folder(folder: str | Path) -> bool:
    """True when ``folder`` (or its ``mav0/``) holds ``cam0`` and ``cam1`` with ``sensor.yaml``."""
    root = _euroc_root(Path(folder))
    return all((root / cam / "sensor.yaml").exists() for cam in ("cam0", "cam1"))


def read_euroc_rig(folder: str | Path) -> tuple[CameraCalibration, CameraCalibration]:
    """The left (cam0) and right (cam1) calibration of a EuRoC folder (or its ``mav0/``)."""
    root = _euroc_root(Path(folder))
    left, right = (read_euroc_camera(root / cam / "sensor.yaml") for cam in ("cam0", "cam1"))
    return left, right


def _read_frame_list(camera_dir: Path) -> dict[int, Path]:
    """``data.csv`` of one camera: timestamp (ns) -> image file (in ``data/`` or beside the csv)."""
    image_dir = camera_dir / "data" if (camera_dir / "data").is_dir() else camera_dir
    frames = {}
    for line in (camera_dir / "data.csv").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            stamp, filename = (part.strip() for part in line.split(",")[:2])
            frames[int(stamp)] = image_dir / filename
    return frames


def read_euroc_stereo(folder: str | Path, name: str | None = None) -> PoseDataset:
    """Read a EuRoC stereo folder: every timestamp in both cameras is a stereo pair.

    Ground truth is the calibrated extrinsic ``T_0to1 = inv(T_B_c1) T_B_c0``; the images are raw
    (distorted), so the pairs carry the radtan coefficients.

    Args:
        folder: the sequence folder (holding ``mav0/``) or ``mav0`` itself.
        name: dataset name; default the folder name.

    Returns:
        A stereo :class:`PoseDataset`, pairs in time order.

    Raises:
        InputError: calibration or frame lists missing, or no common timestamps.
    """
    folder = Path(folder)
    root = _euroc_root(folder)
    left, right = read_euroc_rig(folder)
    try:
        left_frames, right_frames = (_read_frame_list(root / cam) for cam in ("cam0", "cam1"))
    except (OSError, ValueError) as err:
        raise InputError(f"{root}: cam0/cam1 data.csv unreadable ({err})") from err
    stamps = sorted(set(left_frames) & set(right_frames))
    if not stamps:
        raise InputError(f"{root}: no timestamp appears in both cam0 and cam1 data.csv")
    if left.distortion_model != right.distortion_model:
        raise InputError(
            f"{root}: cam0 uses {left.distortion_model} and cam1 {right.distortion_model}; "
            "pairs with two distortion models are not supported"
        )
    T_0to1 = stereo_extrinsic(left, right)
    pairs = tuple(
        PosePair(
            name=str(stamp),
            image0=left_frames[stamp],
            image1=right_frames[stamp],
            K0=left.K,
            K1=right.K,
            T_0to1=T_0to1,
            distortion0=left.distortion,
            distortion1=right.distortion,
            distortion_model=left.distortion_model,
            intrinsics_size=(left.width, left.height),
        )
        for stamp in stamps
    )
    return PoseDataset(name or folder.name, pairs, stereo=True)
