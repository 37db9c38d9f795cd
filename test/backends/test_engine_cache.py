"""The engine cache: keys, atomic writes, sidecars and invalidation (no TensorRT needed)."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from pathlib import Path

import pytest

from edm_ros.backends.engine_cache import (
    STALE_TEMP_S,
    ArtifactCache,
    EngineKey,
    OnnxKey,
    key_digest,
    key_fields,
    sidecar_path,
    write_atomically,
)
from edm_ros.errors import BackendError

KEY = EngineKey(
    onnx_sha256="ab" * 32,
    tensorrt_version="10.3.0",
    gpu_name="Orin",
    compute_capability=(8, 7),
    precision="fp32",
    input_shape=(1, 2, 480, 640),
    num_candidates=1680,
)


class CountingBuilder:
    """A build step that writes recognisable bytes and counts its calls."""

    def __init__(self, payload: bytes = b"engine-bytes") -> None:
        self.payload = payload
        self.calls = 0

    def __call__(self, destination: Path) -> dict:
        self.calls += 1
        destination.write_bytes(self.payload)
        return {"note": "built in a test"}


@pytest.fixture
def cache(tmp_path) -> ArtifactCache:
    return ArtifactCache(tmp_path / "engines", ".engine", "TensorRT engine")


def test_key_digest_is_stable_and_covers_every_field():
    assert key_digest(KEY) == key_digest(dataclasses.replace(KEY))
    changes = {
        "onnx_sha256": "cd" * 32,
        "tensorrt_version": "10.7.0",
        "gpu_name": "NVIDIA GeForce RTX 3090",
        "compute_capability": (8, 6),
        "precision": "fp16",
        "input_shape": (2, 2, 480, 640),
        "num_candidates": 1000,
    }
    assert set(changes) == {f.name for f in dataclasses.fields(EngineKey)}
    digests = {
        key_digest(dataclasses.replace(KEY, **{name: value})) for name, value in changes.items()
    }
    assert len(digests) == len(changes) and key_digest(KEY) not in digests


def test_file_names_say_shape_precision_gpu_and_tensorrt():
    stem = KEY.stem()
    for part in ("w640", "h480", "b1", "k1680", "fp32", "sm87", "trt10.3.0"):
        assert part in stem
    onnx_key = OnnxKey("0" * 64, "EDMConfig()", (2, 2, 256, 320), 448, 17, "{}")
    assert onnx_key.stem().startswith("edm_w320_h256_b2_k448_op17_")


def test_first_call_builds_and_writes_the_key_beside_the_file(cache, caplog):
    build = CountingBuilder()
    with caplog.at_level(logging.WARNING, logger="edm_ros.backends.engine_cache"):
        path = cache.get_or_build(KEY, build, hint="takes minutes on a Jetson")
    assert build.calls == 1 and path.read_bytes() == b"engine-bytes"
    sidecar = json.loads(sidecar_path(path).read_text())
    assert sidecar["key"] == key_fields(KEY) and sidecar["note"] == "built in a test"
    assert sidecar["build_seconds"] >= 0
    building = [r.getMessage() for r in caplog.records if "Building" in r.getMessage()]
    assert building and "takes minutes on a Jetson" in building[0] and str(path) in building[0]
    assert oct(path.stat().st_mode & 0o777) == oct(0o644)


def test_second_call_loads_without_building(cache):
    build = CountingBuilder()
    first = cache.get_or_build(KEY, build)
    second = cache.get_or_build(KEY, build)
    assert first == second and build.calls == 1


def test_rebuild_request_builds_again(cache):
    build = CountingBuilder()
    cache.get_or_build(KEY, build)
    cache.get_or_build(KEY, CountingBuilder(b"new"), rebuild=True)
    assert cache.lookup(KEY).read_bytes() == b"new"  # type: ignore[union-attr]


def test_changed_key_builds_a_new_file_and_says_which_field_changed(cache, caplog):
    cache.get_or_build(KEY, CountingBuilder())
    upgraded = dataclasses.replace(KEY, tensorrt_version="10.7.0")
    build = CountingBuilder()
    with caplog.at_level(logging.WARNING, logger="edm_ros.backends.engine_cache"):
        path = cache.get_or_build(upgraded, build)
    assert build.calls == 1 and path != cache.path_for(KEY)
    assert "tensorrt_version 10.3.0 -> 10.7.0" in caplog.text


def test_interrupted_build_leaves_no_engine_and_no_temporary(cache):
    def crash(destination: Path) -> None:
        destination.write_bytes(b"half an eng")
        raise KeyboardInterrupt  # what Ctrl-C during a long build raises

    with pytest.raises(KeyboardInterrupt):
        cache.get_or_build(KEY, crash)
    assert cache.lookup(KEY) is None
    assert list(cache.directory.iterdir()) == []
    build = CountingBuilder()
    cache.get_or_build(KEY, build)
    assert build.calls == 1


def test_file_without_its_sidecar_is_not_trusted(cache):
    cache.get_or_build(KEY, CountingBuilder())
    sidecar_path(cache.path_for(KEY)).unlink()  # as if killed between the two renames
    assert cache.lookup(KEY) is None
    build = CountingBuilder()
    cache.get_or_build(KEY, build)
    assert build.calls == 1


@pytest.mark.parametrize("content", ["{not json", json.dumps({"key": {"gpu_name": "other"}})])
def test_unreadable_or_foreign_sidecar_means_rebuild(cache, content):
    cache.get_or_build(KEY, CountingBuilder())
    sidecar_path(cache.path_for(KEY)).write_text(content)
    assert cache.lookup(KEY) is None


def test_atomic_write_replaces_the_old_file_only_on_success(tmp_path):
    target = tmp_path / "model.onnx"
    write_atomically(target, lambda tmp: tmp.write_bytes(b"old"))

    def fail(tmp: Path) -> None:
        tmp.write_bytes(b"partial")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_atomically(target, fail)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["model.onnx"]


def test_stale_temporaries_of_a_killed_build_are_removed(cache):
    cache.directory.mkdir(parents=True)
    name = cache.path_for(KEY).name
    stale, fresh = (cache.directory / f".{name}.{tag}.partial" for tag in ("old", "new"))
    for leftover in (stale, fresh):
        leftover.write_bytes(b"x")
    hours_ago = time.time() - 2 * STALE_TEMP_S
    os.utime(stale, (hours_ago, hours_ago))
    cache.get_or_build(KEY, CountingBuilder())
    assert not stale.exists() and fresh.exists(), "a fresh one may belong to a running build"


def test_unwritable_cache_directory_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    cache = ArtifactCache(blocker / "engines", ".engine", "TensorRT engine")
    with pytest.raises(BackendError, match="cannot create the TensorRT engine cache directory"):
        cache.get_or_build(KEY, CountingBuilder())
