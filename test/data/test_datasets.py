"""Dataset readers on ../shared/data and on small files written here."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edm_ros.data.datasets import (
    dataset_format,
    find_datasets,
    load_dataset,
    read_hpatches,
    read_pairs_gt_json,
    read_pairs_with_gt_txt,
)
from edm_ros.data.pairs import HomographyDataset, PoseDataset
from edm_ros.errors import InputError


def test_shared_data_holds_three_recognised_sets(data_dir) -> None:
    datasets = {dataset.name: dataset for dataset in find_datasets(data_dir)}
    euroc = datasets["euroc_v101_micro_stereo"]
    hpatches = datasets["hpatches_v_graffiti"]
    scannet = datasets["scannet1500_sample"]
    assert isinstance(euroc, PoseDataset) and euroc.stereo and len(euroc.pairs) == 19
    assert isinstance(hpatches, HomographyDataset) and len(hpatches.pairs) == 5
    assert isinstance(scannet, PoseDataset) and not scannet.stereo and len(scannet.pairs) == 7
    assert all(
        p.image0.is_file() and p.image1.is_file() for d in datasets.values() for p in d.pairs
    )
    assert scannet.pairs[0].evaluation_size == (640, 480)
    np.testing.assert_allclose(
        hpatches.pairs[0].H_0to1, np.loadtxt(data_dir / "hpatches_v_graffiti/H_1_2")
    )


def test_euroc_calibration_gives_the_published_stereo_extrinsic(data_dir) -> None:
    euroc = load_dataset(data_dir / "euroc_v101_micro_stereo")
    reference = json.loads((data_dir / "euroc_v101_micro_stereo" / "pairs_gt.json").read_text())
    assert isinstance(euroc, PoseDataset)
    for pair, entry in zip(euroc.pairs, reference):
        assert pair.image0.name == entry["image0"].split("/")[-1]
        np.testing.assert_allclose(pair.T_0to1, entry["T_0to1"], atol=1e-12)
        np.testing.assert_allclose(pair.distortion0, entry["dist0"])
        assert pair.distortion_model == "plumb_bob"


def test_superglue_text_and_json_agree_for_scannet(data_dir) -> None:
    folder = data_dir / "scannet1500_sample"
    from_json = read_pairs_gt_json(folder / "pairs_gt.json")
    from_text = read_pairs_with_gt_txt(folder / "pairs_with_gt.txt")
    assert [p.image0 for p in from_json.pairs] == [p.image0 for p in from_text.pairs]
    for a, b in zip(from_json.pairs, from_text.pairs):
        np.testing.assert_allclose(a.K0, b.K0, atol=1e-4)
        np.testing.assert_allclose(a.T_0to1, b.T_0to1, atol=1e-5)


def test_pairs_gt_json_with_a_missing_key_names_it(tmp_path) -> None:
    path = tmp_path / "pairs_gt.json"
    path.write_text(json.dumps([{"image0": "a.png", "image1": "b.png", "K0": np.eye(3).tolist()}]))
    with pytest.raises(InputError, match="missing key 'K1'"):
        read_pairs_gt_json(path)


def test_pairs_gt_json_that_is_not_json_is_rejected(tmp_path) -> None:
    path = tmp_path / "pairs_gt.json"
    path.write_text("{not json")
    with pytest.raises(InputError, match=r"not a readable pairs_gt\.json"):
        read_pairs_gt_json(path)


def test_non_finite_intrinsics_are_rejected(tmp_path) -> None:
    entry = {
        "image0": "a.png",
        "image1": "b.png",
        "K0": [[np.nan, 0, 0], [0, 1, 0], [0, 0, 1]],
        "K1": np.eye(3).tolist(),
        "T_0to1": np.eye(4).tolist(),
    }
    path = tmp_path / "pairs_gt.json"
    path.write_text(json.dumps([entry]).replace("NaN", "NaN"))
    with pytest.raises(InputError, match="K0 must be a finite"):
        read_pairs_gt_json(path)


def test_superglue_lines_with_wrong_field_counts_or_rotations_are_rejected(tmp_path) -> None:
    good = "a.png b.png 0 0 " + " ".join(["1"] * 34)
    path = tmp_path / "pairs_with_gt.txt"
    path.write_text(good + " 7\n")
    with pytest.raises(InputError, match="expected 38 fields"):
        read_pairs_with_gt_txt(path)
    path.write_text(good.replace(" 0 0 ", " 1 0 ") + "\n")
    with pytest.raises(InputError, match="EXIF rotations 1/0 are not supported"):
        read_pairs_with_gt_txt(path)


def test_hpatches_release_folder_reads_every_sequence(tmp_path) -> None:
    for sequence in ("i_a", "v_b"):
        folder = tmp_path / sequence
        folder.mkdir()
        for index in (1, 2, 3):
            (folder / f"{index}.ppm").write_bytes(b"")
        for index in (2, 3):
            np.savetxt(folder / f"H_1_{index}", np.eye(3) * index)
    assert dataset_format(tmp_path) == "hpatches"
    dataset = read_hpatches(tmp_path)
    assert [p.name for p in dataset.pairs] == ["i_a/1-2", "i_a/1-3", "v_b/1-2", "v_b/1-3"]
    np.testing.assert_allclose(dataset.pairs[1].H_0to1, np.eye(3) * 3)


def test_hpatches_homography_without_its_image_is_reported(tmp_path) -> None:
    (tmp_path / "1.png").write_bytes(b"")
    np.savetxt(tmp_path / "H_1_2", np.eye(3))
    with pytest.raises(InputError, match=r"image 2\.ppm/png is missing"):
        read_hpatches(tmp_path)


def test_folder_without_a_dataset_is_explained(tmp_path) -> None:
    assert find_datasets(tmp_path) == []
    with pytest.raises(InputError, match="no dataset recognised"):
        load_dataset(tmp_path)
    with pytest.raises(InputError, match="not a folder"):
        find_datasets(tmp_path / "missing")
