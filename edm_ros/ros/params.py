"""The matcher node's parameters, declared once as a table and read back as one typed record.

Every row becomes a ROS parameter with a typed default and a ``ParameterDescriptor`` (description
with unit, range, choices, read-only flag). :func:`declare_node_params` declares them all, collects
every problem (wrong type, out of range, unknown choice, inconsistent combination) and raises one
:class:`~edm_ros.errors.ConfigError` listing them, so a bad YAML file is fixed in one go.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, Literal, get_args

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.exceptions import ParameterException
from rclpy.node import Node

from edm_ros.backends import BACKENDS
from edm_ros.backends.options import Precision
from edm_ros.errors import ConfigError
from edm_ros.geometry.pose import PoseMethod
from edm_ros.model.config import MatcherConfig, network_size_problems
from edm_ros.pipeline import PairMode

ParamValue = bool | int | float | str | tuple[float, ...]
SyncPolicy = Literal["exact", "approximate"]
ImageQoS = Literal["sensor_data", "reliable"]


@dataclass(frozen=True)
class Param:
    """One row of the parameter table.

    Attributes:
        name: ROS parameter name (also the :class:`NodeParams` field name).
        default: Typed default; its Python type is the parameter type.
        description: What it does, with its unit.
        choices: Allowed string values, or empty for any.
        range: Inclusive (min, max) for numbers, or None.
        read_only: True when the value is used only at startup.
    """

    name: str
    default: ParamValue
    description: str
    choices: tuple[str, ...] = ()
    range: tuple[float, float] | None = None
    read_only: bool = True

    def descriptor(self) -> ParameterDescriptor:
        """The ROS descriptor of this row (``ros2 param describe`` shows its range and choices)."""
        descriptor = ParameterDescriptor(
            name=self.name, description=self.description, read_only=self.read_only
        )
        if self.choices:
            descriptor.additional_constraints = "one of: " + ", ".join(self.choices)
        if self.range is not None and isinstance(self.default, int):
            low, high = (int(v) for v in self.range)
            descriptor.integer_range = [IntegerRange(from_value=low, to_value=high, step=1)]
        elif self.range is not None:
            low_f, high_f = (float(v) for v in self.range)
            descriptor.floating_point_range = [
                FloatingPointRange(from_value=low_f, to_value=high_f, step=0.0)
            ]
        return descriptor


#: The matcher rows other than the input size: ROS parameter name -> MatcherConfig field.
_MATCHER_SETTINGS = {
    "match_threshold": "match_threshold",
    "fine_threshold": "fine_threshold",
    "topk_ratio": "topk_ratio",
    "max_matches": "max_matches",
    "border_px": "border",
}
_SIZE_NAMES = ("input_width", "input_height")


def matcher_values(config: MatcherConfig) -> dict[str, ParamValue]:
    """``config`` as ROS parameter values (ROS has no None: 0 x 0 = image size, 0 = no limit)."""
    width, height = config.input_size or (0, 0)
    values: dict[str, ParamValue] = {"input_width": width, "input_height": height}
    for name, setting in _MATCHER_SETTINGS.items():
        values[name] = getattr(config, setting)
    values["max_matches"] = config.max_matches or 0
    return values


def _matcher_settings(values: Mapping[str, Any]) -> dict[str, Any]:
    """MatcherConfig keyword arguments from ROS values (the inverse of :func:`matcher_values`)."""
    size = (values["input_width"], values["input_height"])
    settings = {setting: values[name] for name, setting in _MATCHER_SETTINGS.items()}
    settings["input_size"] = None if size == (0, 0) else size
    settings["max_matches"] = values["max_matches"] or None
    return settings


_MATCHER_DEFAULTS = matcher_values(MatcherConfig())

PARAMS: tuple[Param, ...] = (
    # --- model -------------------------------------------------------------------------------
    Param(
        "weights_path",
        "",
        "EDM checkpoint (.ckpt or .pt), a local file; empty = the package's shipped weights; "
        "'random' = seeded random weights (meaningless matches; tests only)",
    ),
    Param("device", "cuda", "Inference device: cuda, cuda:N or cpu"),
    Param(
        "backend",
        "torch",
        "Inference runtime; auto picks the fastest installed one and logs it",
        choices=BACKENDS,
    ),
    Param("precision", "fp32", "TensorRT arithmetic (fp16 is opt-in)", choices=get_args(Precision)),
    Param(
        "engine_cache_dir",
        "",
        "Exported ONNX graphs and TensorRT engines; empty = the default cache directory",
    ),
    Param("rebuild_engine", False, "Export / build the graph or engine again at startup"),
    Param("cpu_threads", 0, "Torch CPU threads; 0 keeps torch's default", range=(0, 256)),
    Param(
        "input_width",
        _MATCHER_DEFAULTS["input_width"],
        "Network input width in pixels, a multiple of 32; 0 with input_height 0 = image size",
    ),
    Param(
        "input_height",
        _MATCHER_DEFAULTS["input_height"],
        "Network input height in pixels, a multiple of 32",
    ),
    Param(
        "match_threshold", _MATCHER_DEFAULTS["match_threshold"], "Minimum coarse confidence (0-1)"
    ),
    Param(
        "fine_threshold",
        _MATCHER_DEFAULTS["fine_threshold"],
        "Minimum fine (sub-pixel) confidence P_f (0-1)",
    ),
    Param("topk_ratio", _MATCHER_DEFAULTS["topk_ratio"], "Coarse candidates per 1/8 cell (0-1]"),
    Param(
        "max_matches",
        _MATCHER_DEFAULTS["max_matches"],
        "Keep at most this many matches; 0 = no limit",
    ),
    Param(
        "border_px",
        _MATCHER_DEFAULTS["border_px"],
        "Drop matches closer than this to the image border, pixels",
    ),
    # --- input -------------------------------------------------------------------------------
    Param("mode", "stereo", "Input mode", choices=get_args(PairMode)),
    Param(
        "sync_policy",
        "exact",
        "How images and camera_info are paired: identical stamps, or less than "
        "sync_tolerance_s apart",
        choices=("exact", "approximate"),
    ),
    Param(
        "sync_tolerance_s",
        0.01,
        "Approximate sync: stamps less than this apart, seconds",
        range=(0.0, 1.0),
    ),
    Param("sync_queue_size", 10, "Messages kept per input topic while pairing", range=(1, 1000)),
    Param(
        "rectified_images",
        True,
        "Images are rectified (image_rect): use CameraInfo P and no distortion; false: K and D "
        "(raw images, sequential mode only)",
    ),
    Param(
        "image_qos",
        "sensor_data",
        "Input QoS: sensor_data (best effort, REP-2003) or reliable (images over ~0.5 MB with "
        "default Fast DDS settings)",
        choices=("sensor_data", "reliable"),
    ),
    Param(
        "max_rate_hz",
        0.0,
        "Process at most this many frames per second (newest first); 0 = as fast as possible",
        range=(0.0, 1000.0),
        read_only=False,
    ),
    # --- pose --------------------------------------------------------------------------------
    Param(
        "ransac_method",
        "magsac",
        "Essential-matrix estimator",
        choices=get_args(PoseMethod),
        read_only=False,
    ),
    Param(
        "ransac_threshold_px",
        1.0,
        "Epipolar inlier threshold, pixels",
        range=(0.1, 10.0),
        read_only=False,
    ),
    Param(
        "ransac_confidence",
        0.99999,
        "RANSAC confidence (0-1)",
        range=(0.5, 0.9999999),
        read_only=False,
    ),
    Param(
        "min_inliers",
        15,
        "Fewer pose inliers than this: no pose is published for the frame",
        range=(5, 100_000),
        read_only=False,
    ),
    Param(
        "few_matches_warning",
        50,
        "Fewer matches than this: diagnostics report WARN 'few matches'",
        range=(0, 1_000_000),
        read_only=False,
    ),
    # --- keyframes ---------------------------------------------------------------------------
    Param(
        "keyframe_parallax_px",
        30.0,
        "New keyframe when the inlier matches moved this far from it (median), pixels; 0 = off",
        range=(0.0, 10_000.0),
        read_only=False,
    ),
    Param(
        "keyframe_min_inliers",
        60,
        "New keyframe when fewer pose inliers than this remain",
        range=(0, 1_000_000),
        read_only=False,
    ),
    Param(
        "keyframe_translation_m",
        0.25,
        "New keyframe this far from it, metres (stereo); 0 = off",
        range=(0.0, 1000.0),
        read_only=False,
    ),
    Param(
        "keyframe_rotation_deg",
        5.0,
        "New keyframe after turning this much from it, degrees; 0 = off",
        range=(0.0, 180.0),
        read_only=False,
    ),
    Param(
        "lost_frames_before_restart",
        10,
        "Consecutive frames without a pose after which tracking restarts from the current frame; "
        "0 = only ~/reset restarts",
        range=(0, 1_000_000),
        read_only=False,
    ),
    # --- odometry ----------------------------------------------------------------------------
    Param("odom_frame", "odom", "Odometry frame (REP-105): the base frame at the start"),
    Param("base_frame", "base_link", "Robot base frame (REP-105), the Odometry child frame"),
    Param("publish_tf", False, "Publish the odom -> base_frame transform on /tf"),
    Param(
        "camera_mounting",
        (0.0, 0.0, 0.0, -0.5, 0.5, -0.5, 0.5),
        "Left camera optical frame in base_frame [x, y, z (m), qx, qy, qz, qw], used unless "
        "/tf_static publishes base_frame -> camera; default: at the base origin, looking along +x",
    ),
    # --- status ------------------------------------------------------------------------------
    Param(
        "no_data_timeout_s",
        5.0,
        "Diagnostics report ERROR 'no data received' after this long without a frame, seconds",
        range=(0.5, 3600.0),
    ),
)

PARAMS_BY_NAME: dict[str, Param] = {row.name: row for row in PARAMS}
#: The rows :class:`NodeParams` holds as its ``matcher`` field.
MATCHER_PARAMS: tuple[str, ...] = (*_SIZE_NAMES, *_MATCHER_SETTINGS)


@dataclass(frozen=True)
class NodeParams:
    """The node's parameter values, checked. Field docs: see :data:`PARAMS`.

    The matcher rows (input size, thresholds, top-K ratio, max matches, border) are held as one
    :class:`~edm_ros.model.config.MatcherConfig`, which owns their defaults and validation.
    """

    weights_path: str
    device: str
    backend: str
    precision: Precision
    engine_cache_dir: str
    rebuild_engine: bool
    cpu_threads: int
    matcher: MatcherConfig  # the rows input_width ... border_px
    mode: PairMode
    sync_policy: SyncPolicy
    sync_tolerance_s: float
    sync_queue_size: int
    rectified_images: bool
    image_qos: ImageQoS
    max_rate_hz: float
    ransac_method: PoseMethod
    ransac_threshold_px: float
    ransac_confidence: float
    min_inliers: int
    few_matches_warning: int
    keyframe_parallax_px: float
    keyframe_min_inliers: int
    keyframe_translation_m: float
    keyframe_rotation_deg: float
    lost_frames_before_restart: int
    odom_frame: str
    base_frame: str
    publish_tf: bool
    camera_mounting: tuple[float, ...]
    no_data_timeout_s: float


def check_values(values: Mapping[str, ParamValue]) -> list[str]:
    """Problems with a complete set of values: types, ranges, choices and combinations.

    Args:
        values: One value per row of :data:`PARAMS`.

    Returns:
        One line per problem (empty when the values are usable).
    """
    row_problems = {
        name: _row_problem(PARAMS_BY_NAME[name], value) for name, value in values.items()
    }
    problems = [p for p in row_problems.values() if p]
    if not any(row_problems[name] for name in MATCHER_PARAMS):  # well typed: MatcherConfig judges
        problems += _matcher_problems(values)
    device = str(values["device"])
    if device not in ("cpu", "cuda") and not re.fullmatch(r"cuda:\d+", device):
        problems.append(f"device: {device!r} is not cpu, cuda or cuda:N")
    if values["mode"] == "stereo" and not values["rectified_images"]:
        problems.append(
            "rectified_images false with mode stereo: the metric scale needs a rectified pair "
            "(right P[0,3] = -fx*B); rectify with stereo_image_proc first"
        )
    mounting = values["camera_mounting"]
    if isinstance(mounting, (tuple, list)) and (
        len(mounting) != 7 or not all(math.isfinite(v) for v in mounting) or not any(mounting[3:])
    ):
        problems.append(
            f"camera_mounting {list(mounting)}: expected 7 finite numbers [x, y, z, qx, qy, qz, "
            "qw] with a non-zero quaternion"
        )
    return problems


def _matcher_problems(values: Mapping[str, ParamValue]) -> list[str]:
    """MatcherConfig's verdict on the matcher rows, under the ROS names, every problem listed."""
    width, height = values["input_width"], values["input_height"]
    if (width == 0) != (height == 0):
        problems = [
            f"input_width {width} and input_height {height}: set both to 0 (image size) or neither"
        ]
    else:
        problems = network_size_problems((width, height), _SIZE_NAMES) if width else []
    settings = _matcher_settings(values)
    for name, setting in _MATCHER_SETTINGS.items():  # one at a time: MatcherConfig stops at one
        try:
            MatcherConfig().updated(**{setting: settings[setting]})
        except ConfigError as err:
            problems.append(f"{name}: {err}")
    return problems


def _row_problem(row: Param, value: ParamValue) -> str:
    """One line describing what is wrong with ``value`` for ``row``, or "" when it is fine."""
    expected = type(row.default)
    if expected is tuple:
        if not (isinstance(value, (tuple, list)) and all(type(v) is float for v in value)):
            return f"{row.name}: expected a list of floats, got {value!r} (write 1.0, not 1)"
        return ""
    if type(value) is not expected:  # bool is an int subclass: compare exact types
        hint = " (write 1.0, not 1)" if expected is float and isinstance(value, int) else ""
        return (
            f"{row.name}: expected {expected.__name__}, got {type(value).__name__} {value!r}{hint}"
        )
    if row.choices and value not in row.choices:
        return f"{row.name}: {value!r} is not one of {', '.join(row.choices)}"
    if row.range is not None and not row.range[0] <= float(value) <= row.range[1]:  # type: ignore[arg-type]  # a number: checked above
        return f"{row.name}: {value!r} is outside [{row.range[0]}, {row.range[1]}]"
    return ""


def _rclpy_rejection(row: Param, err: ParameterException) -> str:
    """One line for a value rclpy refused at declaration, with a hint for the int/float slip."""
    text = str(err).rsplit(":", 1)[0]  # rclpy appends ": <name>"
    if "'INTEGER', expecting type 'DOUBLE'" in text:
        text += " (write 1.0, not 1)"
    return f"{row.name}: {text}"


def node_params_from_values(values: Mapping[str, ParamValue]) -> NodeParams:
    """Build :class:`NodeParams` from one value per row.

    Raises:
        ConfigError: Listing every problem found by :func:`check_values`.
    """
    problems = check_values(values)
    if problems:
        raise ConfigError("invalid parameters: " + "; ".join(problems))
    checked: dict[str, Any] = {name: values[name] for name in PARAMS_BY_NAME}
    for name in MATCHER_PARAMS:
        del checked[name]
    checked["matcher"] = MatcherConfig(**_matcher_settings(values))
    return NodeParams(**checked)  # types and choices checked above


def declare_node_params(node: Node) -> NodeParams:
    """Declare every row of :data:`PARAMS` on ``node`` and return the checked values.

    Values come from the node's overrides (``--params-file``, ``-p``), else the table's defaults.

    Raises:
        ConfigError: Listing every problem (rclpy's type/range rejections and ours) together.
    """
    values: dict[str, ParamValue] = {}
    problems = []
    for row in PARAMS:
        try:
            default = list(row.default) if isinstance(row.default, tuple) else row.default
            value: Any = node.declare_parameter(row.name, default, row.descriptor()).value
            # array parameters come back as list or array.array: one immutable form
            values[row.name] = tuple(value) if isinstance(row.default, tuple) else value
        except ParameterException as err:  # rclpy's own type or range rejection
            problems.append(_rclpy_rejection(row, err))
            values[row.name] = row.default
    problems += [p for p in check_values(values) if p not in problems]
    if problems:
        raise ConfigError("invalid parameters: " + "; ".join(problems))
    return node_params_from_values(values)


def node_param_values(params: NodeParams) -> dict[str, ParamValue]:
    """One ROS value per row of :data:`PARAMS` (the inverse of :func:`node_params_from_values`)."""
    values = {f.name: getattr(params, f.name) for f in fields(NodeParams) if f.name != "matcher"}
    return {**values, **matcher_values(params.matcher)}


def updated_node_params(current: NodeParams, changes: Mapping[str, ParamValue]) -> NodeParams:
    """``current`` with ``changes`` applied, for a runtime ``set_parameters`` request.

    Raises:
        ConfigError: When a name is unknown or read-only, or a value is invalid (all listed).
    """
    problems = []
    for name in changes:
        row = PARAMS_BY_NAME.get(name)
        if row is None:
            problems.append(f"{name}: unknown parameter")
        elif row.read_only:
            problems.append(f"{name}: read-only, set it in the params file and restart the node")
    if problems:
        raise ConfigError("; ".join(problems))
    values = node_param_values(current)
    values.update(changes)
    return node_params_from_values(values)
