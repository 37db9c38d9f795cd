"""Image pairs with ground truth: the records the evaluation runs on, and readers for small sets.

Two kinds of sets:

* :class:`PoseDataset`: pairs with intrinsics and the relative pose ``T_0to1``
  (``X_cam1 = R X_cam0 + t``), read from ``pairs_gt.json``, SuperGlue's ``pairs_with_gt.txt``,
  a EuRoC/Kalibr stereo rig (:mod:`edm_ros.data.calibration`) or the LoFTR test layouts
  (:mod:`edm_ros.data.benchmarks`).
* :class:`HomographyDataset`: HPatches sequences, ``H_1_k`` maps image 1 to image k
  (``x_k ~ H_1_k x_1``, 0-based OpenCV pixels).

:func:`find_datasets` recognises each format in a folder, so one command evaluates all of them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import numpy as np

from edm_ros.data.calibration import is_euroc_folder, read_euroc_stereo
from edm_ros.data.pairs import (
    Dataset,
    HomographyDataset,
    HomographyPair,
    PoseDataset,
    PosePair,
    no_distortion,
)
from edm_ros.errors import InputError

IMAGE_SUFFIXES = (".png", ".ppm", ".jpg", ".jpeg", ".pgm")
DatasetFormat = Literal["euroc_stereo", "pairs_gt_json", "pairs_with_gt_txt", "hpatches"]
_PAIR_FILES = {"pairs_gt_json": "pairs_gt.json", "pairs_with_gt_txt": "pairs_with_gt.txt"}


def _matrix(value: object, shape: tuple[int, ...], where: str) -> np.ndarray:
    array = np.asarray(value, dtype=np.float64)
    if array.size != int(np.prod(shape)):
        raise InputError(f"{where}: expected {shape} numbers, got {array.size}; file corrupt?")
    return array.reshape(shape)


def read_pairs_gt_json(path: str | Path, name: str | None = None) -> PoseDataset:
    """Read a ``pairs_gt.json`` list of pose pairs (the format of ../shared/data).

    Each entry holds ``image0``, ``image1`` (relative to the file's folder, or to ``images/`` beside
    it), ``K0``, ``K1`` and ``T_0to1``; optional ``dist0``/``dist1`` (OpenCV radtan order) and
    ``K_640x480`` (the ScanNet evaluation resolution, which then becomes ``evaluation_size``).

    Args:
        path: the JSON file.
        name: dataset name; default the folder name.

    Returns:
        The dataset, pairs in file order.

    Raises:
        InputError: unreadable file or missing keys.
    """
    path = Path(path)
    try:
        entries = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise InputError(f"{path}: not a readable pairs_gt.json ({err})") from err
    if not isinstance(entries, list) or not entries:
        raise InputError(f"{path}: expected a non-empty JSON list of pairs, got {type(entries)}")
    image_dir = _image_dir(path.parent, str(entries[0].get("image0", "")))
    pairs = []
    for index, entry in enumerate(entries):
        where = f"{path} entry {index}"
        try:
            pairs.append(_pose_pair_from_json(entry, image_dir, where))
        except KeyError as err:
            raise InputError(
                f"{where}: missing key {err}; expected image0, image1, K0, K1, T_0to1"
            ) from err
    return PoseDataset(name or path.parent.name, tuple(pairs))


def _pose_pair_from_json(entry: dict, image_dir: Path, where: str) -> PosePair:
    distortion0 = np.asarray(entry.get("dist0", []), dtype=np.float64).reshape(-1)
    distortion1 = np.asarray(entry.get("dist1", []), dtype=np.float64).reshape(-1)
    has_distortion = bool(np.any(distortion0) or np.any(distortion1))
    evaluation_size = (640, 480) if "K_640x480" in entry else None
    image0, image1 = str(entry["image0"]), str(entry["image1"])
    return PosePair(
        name=f"{Path(image0).stem}-{Path(image1).stem}",
        image0=image_dir / image0,
        image1=image_dir / image1,
        K0=_matrix(entry["K0"], (3, 3), where),
        K1=_matrix(entry["K1"], (3, 3), where),
        T_0to1=_matrix(entry["T_0to1"], (4, 4), where),
        distortion0=distortion0 if has_distortion else no_distortion(),
        distortion1=distortion1 if has_distortion else no_distortion(),
        distortion_model="plumb_bob" if has_distortion else "none",
        evaluation_size=evaluation_size,
    )


def _image_dir(folder: Path, first_image: str) -> Path:
    """Images sit beside the pair file or in its ``images/`` subfolder."""
    if (folder / first_image).exists() or not (folder / "images" / first_image).exists():
        return folder
    return folder / "images"


def read_pairs_with_gt_txt(
    path: str | Path, image_dir: str | Path | None = None, name: str | None = None
) -> PoseDataset:
    """Read SuperGlue's ``pairs_with_gt.txt``: ``name0 name1 rot0 rot1 K0(9) K1(9) T_0to1(16)``.

    Args:
        path: the text file.
        image_dir: folder of the images; default the file's folder (or its ``images/``).
        name: dataset name; default the folder name.

    Returns:
        The dataset; K refers to the images as stored.

    Raises:
        InputError: a malformed line, or an EXIF rotation other than 0 (not supported).
    """
    path = Path(path)
    lines = [line.split() for line in path.read_text().splitlines() if line.strip()]
    if not lines:
        raise InputError(f"{path}: no pairs in the file")
    folder = Path(image_dir) if image_dir is not None else _image_dir(path.parent, lines[0][0])
    pairs = []
    for number, fields in enumerate(lines, start=1):
        where = f"{path}:{number}"
        if len(fields) != 38:
            raise InputError(
                f"{where}: expected 38 fields (name0 name1 rot0 rot1 K0 K1 T_0to1), "
                f"got {len(fields)}"
            )
        if fields[2] != "0" or fields[3] != "0":
            raise InputError(f"{where}: EXIF rotations {fields[2]}/{fields[3]} are not supported")
        values = np.asarray(fields[4:], dtype=np.float64)
        pairs.append(
            PosePair(
                name=f"{Path(fields[0]).stem}-{Path(fields[1]).stem}",
                image0=folder / fields[0],
                image1=folder / fields[1],
                K0=values[0:9].reshape(3, 3),
                K1=values[9:18].reshape(3, 3),
                T_0to1=values[18:34].reshape(4, 4),
            )
        )
    return PoseDataset(name or path.parent.name, tuple(pairs))


def _image_with_stem(folder: Path, stem: str) -> Path | None:
    for suffix in IMAGE_SUFFIXES:
        if (folder / f"{stem}{suffix}").exists():
            return folder / f"{stem}{suffix}"
    return None


def read_hpatches_sequence(folder: str | Path) -> tuple[HomographyPair, ...]:
    """Read one HPatches sequence: images ``1 … 6`` and homographies ``H_1_k``.

    Args:
        folder: the sequence folder (e.g. ``hpatches-sequences-release/v_graffiti``).

    Returns:
        The pairs (1, k) for every ``H_1_k`` with its image present, k ascending.

    Raises:
        InputError: no reference image ``1.*`` or no homography.
    """
    folder = Path(folder)
    reference = _image_with_stem(folder, "1")
    homography_files = sorted(folder.glob("H_1_*"), key=lambda p: int(p.name.split("_")[-1]))
    if reference is None or not homography_files:
        raise InputError(f"{folder}: not an HPatches sequence (expected 1.ppm/png and H_1_k files)")
    pairs = []
    for homography_file in homography_files:
        index = homography_file.name.split("_")[-1]
        target = _image_with_stem(folder, index)
        if target is None:
            raise InputError(f"{homography_file}: image {index}.ppm/png is missing beside it")
        homography = _matrix(np.loadtxt(homography_file), (3, 3), str(homography_file))
        pairs.append(HomographyPair(f"{folder.name}/1-{index}", reference, target, homography))
    return tuple(pairs)


def read_hpatches(root: str | Path, name: str | None = None) -> HomographyDataset:
    """Read one HPatches sequence folder, or a release folder holding many sequences.

    Args:
        root: a sequence folder or ``hpatches-sequences-release``.
        name: dataset name; default the folder name.

    Returns:
        All (1, k) pairs of all sequences, sequences in name order.
    """
    root = Path(root)
    if any(root.glob("H_1_*")):
        sequences = [root]
    else:
        sequences = sorted(p for p in root.iterdir() if p.is_dir() and any(p.glob("H_1_*")))
    if not sequences:
        raise InputError(f"{root}: no HPatches sequence (folders with H_1_k files) found")
    pairs = tuple(pair for sequence in sequences for pair in read_hpatches_sequence(sequence))
    return HomographyDataset(name or root.name, pairs)


def dataset_format(path: str | Path) -> DatasetFormat | None:
    """The format of the dataset at ``path``, or None when nothing is recognised.

    Checked in this order: a EuRoC/Kalibr stereo folder (``cam0/`` and ``cam1/`` with
    ``sensor.yaml``, or ``mav0/``), ``pairs_gt.json``, ``pairs_with_gt.txt``, HPatches.
    """
    path = Path(path)
    if path.is_file():
        return "pairs_gt_json" if path.suffix == ".json" else "pairs_with_gt_txt"
    if not path.is_dir():
        return None
    if is_euroc_folder(path):
        return "euroc_stereo"
    if (path / "pairs_gt.json").exists():
        return "pairs_gt_json"
    if (path / "pairs_with_gt.txt").exists():
        return "pairs_with_gt_txt"
    if any(path.glob("H_1_*")) or _is_hpatches_release(path):
        return "hpatches"
    return None


def _is_hpatches_release(folder: Path) -> bool:
    """A folder whose subfolders are all HPatches sequences (``hpatches-sequences-release``)."""
    subfolders = [p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")]
    return bool(subfolders) and all(any(p.glob("H_1_*")) for p in subfolders)


def load_dataset(path: str | Path) -> Dataset:
    """Read the dataset in ``path`` (a folder or a pairs file), recognising its format.

    Args:
        path: see :func:`dataset_format` for what is recognised.

    Returns:
        The dataset.

    Raises:
        InputError: nothing recognisable at ``path``, or a malformed file.
    """
    path = Path(path)
    found = dataset_format(path)
    if found == "euroc_stereo":
        return read_euroc_stereo(path)
    if found == "hpatches":
        return read_hpatches(path)
    if found is not None:
        file = path if path.is_file() else path / _PAIR_FILES[found]
        return (
            read_pairs_gt_json(file) if found == "pairs_gt_json" else read_pairs_with_gt_txt(file)
        )
    raise InputError(
        f"{path}: no dataset recognised. Expected pairs_gt.json, pairs_with_gt.txt, HPatches "
        "folders with H_1_k files, or a EuRoC folder with cam0/ and cam1/sensor.yaml."
    )


def find_datasets(root: str | Path) -> list[Dataset]:
    """The dataset in ``root`` itself or else those in its direct subfolders (name order).

    Args:
        root: e.g. ``../shared/data``.

    Returns:
        The datasets found; empty when none.

    Raises:
        InputError: ``root`` is not a folder, or a recognised dataset is malformed.
    """
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root}: not a folder; give the folder that holds the datasets")
    if dataset_format(root) is not None:
        return [load_dataset(root)]
    subfolders = sorted(p for p in root.iterdir() if p.is_dir())
    return [load_dataset(p) for p in subfolders if dataset_format(p) is not None]
