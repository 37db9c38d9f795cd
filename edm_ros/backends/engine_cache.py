"""A directory of built files (ONNX graphs, TensorRT engines), each named and checked by a key.

A file is valid only when both it and its JSON sidecar exist and the sidecar holds the same key.
Both are written to a temporary file in the same directory and renamed into place, file first,
sidecar last: a build that is interrupted (killed, power loss, full disk) never leaves a file that
a later start would load. Nothing here imports TensorRT, so the logic is tested on any machine.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from edm_ros.backends.options import Precision
from edm_ros.errors import BackendError

logger = logging.getLogger(__name__)

#: Temporary files of an interrupted build older than this are removed by the next build.
STALE_TEMP_S = 3600.0
_TEMP_SUFFIX = ".partial"


class CacheKey(Protocol):
    """A frozen dataclass whose fields decide whether a cached file can be reused."""

    def stem(self) -> str:
        """File name without suffix: readable shape fields plus a digest of every field."""
        ...


@dataclass(frozen=True)
class OnnxKey:
    """What an exported EDM graph depends on."""

    weights_sha256: str  # over the state_dict tensors (``export.weights_sha256``)
    architecture: str  # repr of the EDMConfig
    input_shape: tuple[int, int, int, int]  # (B, 2, H, W)
    num_candidates: int  # K
    opset: int
    exporter: str  # versions of edm_ros's export code, torch, onnxscript, onnx

    def stem(self) -> str:
        batch, _, height, width = self.input_shape
        return (
            f"edm_w{width}_h{height}_b{batch}_k{self.num_candidates}_op{self.opset}_"
            f"{key_digest(self)[:16]}"
        )


@dataclass(frozen=True)
class EngineKey:
    """What a TensorRT engine depends on: engines are tied to the GPU and the TensorRT version."""

    onnx_sha256: str
    tensorrt_version: str
    gpu_name: str
    compute_capability: tuple[int, int]
    precision: Precision
    input_shape: tuple[int, int, int, int]  # (B, 2, H, W)
    num_candidates: int  # K

    def stem(self) -> str:
        batch, _, height, width = self.input_shape
        major, minor = self.compute_capability
        return (
            f"edm_w{width}_h{height}_b{batch}_k{self.num_candidates}_{self.precision}_"
            f"sm{major}{minor}_trt{self.tensorrt_version}_{key_digest(self)[:16]}"
        )


def key_fields(key: CacheKey) -> dict[str, Any]:
    """The key as JSON-ready fields (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(key)))  # type: ignore[call-overload]


def key_digest(key: CacheKey) -> str:
    """sha256 over the key's fields, stable across runs and Python versions."""
    return hashlib.sha256(json.dumps(key_fields(key), sort_keys=True).encode()).hexdigest()


def file_sha256(path: Path, chunk_bytes: int = 1 << 22) -> str:
    """sha256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while chunk := stream.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


def sidecar_path(path: Path) -> Path:
    """``edm.onnx`` -> ``edm.onnx.json``."""
    return path.with_name(path.name + ".json")


class ArtifactCache:
    """Files built from a key, in one directory: ``<stem><suffix>`` plus its ``.json`` sidecar."""

    def __init__(self, directory: Path, suffix: str, kind: str) -> None:
        """Args:
        directory: where the files live (created on first build).
        suffix: file suffix, e.g. ".onnx" or ".engine".
        kind: what the files are, for log lines and errors ("TensorRT engine").
        """
        self.directory = Path(directory)
        self.suffix = suffix
        self.kind = kind

    def path_for(self, key: CacheKey) -> Path:
        """Where the file for ``key`` lives (whether or not it exists yet)."""
        return self.directory / f"{key.stem()}{self.suffix}"

    def lookup(self, key: CacheKey) -> Path | None:
        """The cached file for ``key`` if it is complete and its sidecar holds the same key."""
        path = self.path_for(key)
        sidecar = read_sidecar(sidecar_path(path))
        if not path.is_file() or sidecar is None or sidecar.get("key") != key_fields(key):
            return None
        return path

    def get_or_build(
        self,
        key: CacheKey,
        build: Callable[[Path], dict[str, Any] | None],
        rebuild: bool = False,
        hint: str = "",
    ) -> Path:
        """Return the cached file for ``key``, building it first if needed or asked.

        Args:
            key: the cache key.
            build: writes the file to the path it is given (a temporary name); may return extra
                fields for the sidecar.
            rebuild: build even if a valid file exists (e.g. ``force_engine_update``).
            hint: appended to the "building" log line (e.g. "takes minutes on a Jetson").

        Raises:
            BackendError: the directory cannot be written.
        """
        path = self.path_for(key)
        if not rebuild and self.lookup(key) is not None:
            logger.info("%s: using cached %s", path, self.kind)
            return path
        reason = "rebuild requested" if rebuild else self._why_missing(key)
        logger.warning(
            "Building %s %s (%s)%s; later starts load it from the cache.",
            self.kind,
            path,
            reason,
            f". {hint}" if hint else "",
        )
        self._make_directory()
        self._remove_stale_temporaries(path)
        start = time.perf_counter()
        extra = write_atomically(path, build) or {}
        seconds = time.perf_counter() - start
        record = {"key": key_fields(key), "build_seconds": round(seconds, 3), **extra}
        write_atomically(
            sidecar_path(path), lambda tmp: tmp.write_text(json.dumps(record, indent=2))
        )
        logger.warning("Built %s %s in %.1f s.", self.kind, path.name, seconds)
        return path

    def _why_missing(self, key: CacheKey) -> str:
        """Name the key fields that changed since a cached file of the same shape was built."""
        wanted = key_fields(key)
        for other in sorted(self.directory.glob(f"*{self.suffix}.json")):
            cached = (read_sidecar(other) or {}).get("key")
            if not isinstance(cached, dict) or cached.keys() != wanted.keys():
                continue
            changed = [name for name in wanted if cached[name] != wanted[name]]
            if len(changed) < len(wanted) and "input_shape" not in changed:
                details = ", ".join(f"{n} {cached[n]} -> {wanted[n]}" for n in changed)
                return f"key changed since {other.name[: -len('.json')]}: {details}"
        return "no cached file for this key"

    def _make_directory(self) -> None:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise BackendError(
                f"cannot create the {self.kind} cache directory {self.directory} ({err}); "
                "choose a writable cache_dir"
            ) from err

    def _remove_stale_temporaries(self, path: Path) -> None:
        now = time.time()
        for leftover in self.directory.glob(f".{path.name}.*{_TEMP_SUFFIX}"):
            try:
                if now - leftover.stat().st_mtime > STALE_TEMP_S:
                    leftover.unlink()
            except FileNotFoundError:  # another process finished or removed it
                continue


def write_atomically(path: Path, write: Callable[[Path], Any]) -> Any:
    """Let ``write`` fill a temporary file beside ``path``, then rename it to ``path``.

    The rename is atomic on POSIX file systems: readers see the old file or the complete new
    one. If ``write`` raises, the temporary file is removed and ``path`` is untouched.

    Returns:
        What ``write`` returned.
    """
    descriptor, name = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}.", suffix=_TEMP_SUFFIX
    )
    os.close(descriptor)
    temporary = Path(name)
    try:
        result = write(temporary)
        with open(temporary, "rb") as stream:
            os.fsync(stream.fileno())
        os.chmod(temporary, 0o644)  # mkstemp creates 0600; a shared cache must be readable
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return result


def read_sidecar(path: Path) -> dict[str, Any] | None:
    """A sidecar's JSON object, or None if it is missing or unreadable (treated as no cache)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
