"""The training run's configuration: one frozen record, read from YAML/JSON plus CLI overrides.

Defaults are the official outdoor recipe (official configs) where one exists; the nested
``schedule`` and ``loss`` records live beside the code that uses them. A file holds a mapping with
the same names (``schedule: {canonical_lr: 1e-3}``); an override is ``key=value`` with dotted keys
for nested fields (``schedule.canonical_lr=1e-3``, ``image_size=320,256``). Unknown keys and
values of the wrong type are errors that name the key.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from edm_ros.data.homography import PhotometricRange, WarpRange
from edm_ros.data.parallax import MotionRange
from edm_ros.errors import ConfigError
from edm_ros.model.config import MatcherConfig, check_network_size
from edm_ros.training.losses import LossConfig
from edm_ros.training.schedule import LRSchedule

DataKind = Literal["homography", "megadepth", "scannet"]


@dataclass(frozen=True)
class TrainConfig:
    """A training run. Sizes are (W, H) pixels; rates per optimiser step."""

    # Data
    data: DataKind = "homography"
    images: str | None = None  # homography: folder of source images; None = procedural textures
    exclude_images: tuple[str, ...] = ()  # sub-folders of `images` held aside (validation views)
    parallax_fraction: float = 0.0  # homography data: share of batches rendered from 3D rooms
    warp: WarpRange = field(default_factory=WarpRange)  # homography views
    photometric: PhotometricRange = field(default_factory=PhotometricRange)  # per view, both kinds
    motion: MotionRange = field(default_factory=MotionRange)  # camera poses of the 3D rooms
    data_root: str | None = None  # megadepth/scannet: LoFTR data folder (data/megadepth, ...)
    scene_list: str | None = None  # megadepth/scannet: file of scene-info names; None = all
    image_size: tuple[int, int] = (832, 832)  # network input (official TRAIN_RES 832)
    pairs_per_epoch: int = 36800  # homography pairs per epoch (official: 368 subsets x 100)
    pairs_per_scene: int = 100  # megadepth/scannet: scene-balanced draws per scene and epoch
    min_overlap: float = 0.0  # megadepth: minimum covisibility score of a pair (official 0.0)
    # Validation after every epoch
    validation: tuple[
        str, ...
    ] = ()  # dataset folders (HPatches, pairs_gt.json, ...); () = held-out
    validation_pairs: int = 32  # held-out generated pairs, or the first N pairs of the dataset
    validation_size: tuple[int, int] | None = None  # dataset validation input; None = image_size
    match_threshold: float = MatcherConfig.match_threshold  # final matches in validation
    # Optimisation (official outdoor recipe)
    batch_size: int = 4  # pairs per step; the rate scales with it (schedule.canonical_batch)
    epochs: int = 30
    schedule: LRSchedule = field(default_factory=LRSchedule)
    weight_decay: float = 0.1  # AdamW
    gradient_clip: float = 0.5  # max global gradient norm
    loss: LossConfig = field(default_factory=LossConfig)
    pad_num: int = 32  # GT padding: in-window candidates per pair (TRAIN_PAD_NUM; 0 = off)
    topk_ratio: float = MatcherConfig.topk_ratio  # K = ratio * Hc * Wc candidates
    # Run
    seed: int = 66  # official TRAINER.SEED
    device: str = "cpu"  # "cpu", "cuda", "cuda:N"
    num_workers: int = 0  # data loader processes
    threads: int | None = None  # torch CPU threads, set by edm-train; None = torch's default
    output_dir: str = "runs/edm"  # checkpoints, history.json, plots
    init_weights: str | None = None  # start from this checkpoint (fine-tuning); None = random
    progress: bool = True  # progress bar (tqdm) on stderr

    def __post_init__(self) -> None:
        if isinstance(self.validation, str):  # one folder given where a list is expected
            object.__setattr__(self, "validation", (self.validation,))
        check_network_size(self.image_size)
        if self.validation_size is not None:
            check_network_size(self.validation_size)
        positive = {
            "batch_size": self.batch_size,
            "epochs": self.epochs,
            "pairs_per_epoch": self.pairs_per_epoch,
            "pairs_per_scene": self.pairs_per_scene,
            "validation_pairs": self.validation_pairs,
        }
        for name, value in positive.items():
            if value < 1:
                raise ConfigError(f"{name} must be >= 1, got {value}")
        if self.gradient_clip <= 0 or self.weight_decay < 0 or self.pad_num < 0:
            raise ConfigError(
                f"need gradient_clip > 0, weight_decay >= 0, pad_num >= 0; got "
                f"{self.gradient_clip}, {self.weight_decay}, {self.pad_num}"
            )
        self.matcher_config()  # validates topk_ratio and match_threshold where they are owned
        if not 0.0 <= self.parallax_fraction <= 1.0:
            raise ConfigError(f"parallax_fraction must be in [0, 1], got {self.parallax_fraction}")
        if self.data != "homography" and self.data_root is None:
            raise ConfigError(f"data {self.data!r} needs data_root (the LoFTR data folder)")

    def matcher_config(self) -> MatcherConfig:
        """The matcher settings of this run (any input size): its K and validation threshold.

        Flat keys (``topk_ratio``, ``match_threshold``) keep the config files short.
        """
        return MatcherConfig(
            input_size=None, topk_ratio=self.topk_ratio, match_threshold=self.match_threshold
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain, nested values (for checkpoints and history files)."""
        return dataclasses.asdict(self)


def load_config(path: str | Path | None = None, overrides: Sequence[str] = ()) -> TrainConfig:
    """Read a config file (YAML or JSON; None = defaults) and apply ``key=value`` overrides.

    Raises:
        ConfigError: unreadable file, unknown key, or a value of the wrong type.
    """
    values: dict[str, Any] = {}
    if path is not None:
        values = _read_mapping(Path(path))
    for override in overrides:
        key, separator, text = override.partition("=")
        if not separator or not key.strip():
            raise ConfigError(f"override {override!r}: expected key=value (e.g. batch_size=2)")
        _set_nested(values, key.strip().split("."), _parse_value(text.strip()))
    return build(TrainConfig, values, "")


def _read_mapping(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except OSError as err:
        raise ConfigError(f"{path}: cannot read the training config ({err})") from err
    if path.suffix.lower() == ".json":
        try:
            content = json.loads(text)
        except json.JSONDecodeError as err:
            raise ConfigError(f"{path}: not valid JSON ({err})") from err
    else:
        try:
            import yaml
        except ImportError as err:
            raise ConfigError(
                f"{path}: reading YAML needs pyyaml (pip install pyyaml) or use a .json file"
            ) from err
        try:
            content = yaml.safe_load(text)
        except yaml.YAMLError as err:
            raise ConfigError(f"{path}: not valid YAML ({err})") from err
    if content is None:
        return {}
    if not isinstance(content, dict):
        raise ConfigError(
            f"{path}: expected a mapping of config keys, got {type(content).__name__}"
        )
    return content


def _parse_value(text: str) -> Any:
    """An override's value: JSON or a Python literal when it parses, else the text itself."""
    for parse in (json.loads, ast.literal_eval):
        try:
            return parse(text)
        except (ValueError, SyntaxError):
            continue
    return text


def _set_nested(values: dict[str, Any], keys: list[str], value: Any) -> None:
    for key in keys[:-1]:
        inner = values.setdefault(key, {})
        if not isinstance(inner, dict):
            raise ConfigError(f"override {'.'.join(keys)}: {key} is not a nested section")
        values = inner
    values[keys[-1]] = value


def build(record: type, values: Mapping[str, Any], prefix: str) -> Any:
    """Build the frozen dataclass ``record`` from a mapping, checking keys and value types."""
    if not isinstance(values, Mapping):
        raise ConfigError(f"{prefix.rstrip('.')}: expected a mapping, got {values!r}")
    hints = typing.get_type_hints(record)
    names = [f.name for f in dataclasses.fields(record)]
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise ConfigError(
            f"unknown config key(s) {', '.join(prefix + u for u in unknown)}; valid keys: "
            f"{', '.join(prefix + n for n in names)}"
        )
    arguments = {name: _coerce(value, hints[name], prefix + name) for name, value in values.items()}
    return record(**arguments)


def _coerce(value: Any, hint: Any, key: str) -> Any:
    """``value`` as type ``hint`` (int, float, bool, str, Literal, tuple, X | None, dataclass)."""
    origin, arguments = typing.get_origin(hint), typing.get_args(hint)
    if dataclasses.is_dataclass(hint):
        return build(hint, value, key + ".")  # type: ignore[arg-type]
    if origin in (typing.Union, types.UnionType):
        is_none = value is None or (isinstance(value, str) and value.lower() in ("none", "null"))
        if is_none and type(None) in arguments:
            return None
        other = [a for a in arguments if a is not type(None)]
        return _coerce(value, other[0], key)
    if origin is Literal:
        if value not in arguments:
            raise ConfigError(
                f"{key}: expected one of {', '.join(map(repr, arguments))}, got {value!r}"
            )
        return value
    if origin is tuple:
        if isinstance(value, str) and arguments == (str, Ellipsis):
            value = [value]  # one name where a list of names is expected
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list of values, got {value!r}")
        element = arguments[0]
        if arguments[-1] is not Ellipsis and len(arguments) != len(value):
            raise ConfigError(f"{key}: expected {len(arguments)} values, got {list(value)}")
        return tuple(_coerce(v, element, key) for v in value)
    return _coerce_scalar(value, hint, key)


def _coerce_scalar(value: Any, hint: Any, key: str) -> Any:
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif hint is str and isinstance(value, (str, Path)):
        return str(value)
    raise ConfigError(f"{key}: expected {getattr(hint, '__name__', hint)}, got {value!r}")
