"""edm_ros.ros.params: the table, its descriptors, and how bad values are reported."""

from __future__ import annotations

from dataclasses import fields

import pytest
import rclpy
import yaml
from rclpy.node import Node
from rclpy.parameter import Parameter

from edm_ros.errors import ConfigError
from edm_ros.ros.params import (
    MATCHER_PARAMS,
    PARAMS,
    PARAMS_BY_NAME,
    NodeParams,
    check_values,
    declare_node_params,
    node_params_from_values,
    updated_node_params,
)
from test.ros.conftest import CONFIG_DIR, TEST_PARAMS

DEFAULTS = {row.name: row.default for row in PARAMS}


@pytest.fixture
def context():
    context = rclpy.Context()
    rclpy.init(args=[], context=context)
    yield context
    rclpy.shutdown(context=context)


def test_table_and_record_have_the_same_names_and_typed_defaults() -> None:
    record = [field.name for field in fields(NodeParams) if field.name != "matcher"]
    assert [row.name for row in PARAMS if row.name not in MATCHER_PARAMS] == record
    for row in PARAMS:
        assert isinstance(row.default, (bool, int, float, str, tuple)), row.name
        assert row.description, row.name
        if row.choices:
            assert row.default in row.choices
        if row.range is not None:
            assert row.range[0] <= row.default <= row.range[1], row.name


def test_descriptors_carry_ranges_choices_and_read_only() -> None:
    threshold = PARAMS_BY_NAME["ransac_threshold_px"].descriptor()
    assert threshold.floating_point_range[0].from_value == 0.1
    assert threshold.floating_point_range[0].to_value == 10.0
    assert not threshold.read_only
    queue = PARAMS_BY_NAME["sync_queue_size"].descriptor()
    assert (queue.integer_range[0].from_value, queue.integer_range[0].to_value) == (1, 1000)
    mode = PARAMS_BY_NAME["mode"].descriptor()
    assert mode.read_only and mode.additional_constraints == "one of: stereo, sequential"


def test_default_values_are_valid_and_use_the_shipped_weights() -> None:
    assert check_values(DEFAULTS) == []
    assert node_params_from_values(DEFAULTS).weights_path == ""  # the package's weights


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"mode": "mono"}, "mode: 'mono' is not one of stereo, sequential"),
        ({"ransac_threshold_px": 20.0}, "ransac_threshold_px: 20.0 is outside [0.1, 10.0]"),
        ({"ransac_threshold_px": 2}, "ransac_threshold_px: expected float, got int 2 (write 1.0"),
        ({"input_width": 100}, "input_width 100 is not a multiple of 32 pixels"),
        ({"input_width": 0}, "input_width 0 and input_height 480: set both to 0"),
        ({"device": "gpu"}, "device: 'gpu' is not cpu, cuda or cuda:N"),
        ({"rectified_images": False}, "rectified_images false with mode stereo"),
        ({"sync_policy": "latest"}, "sync_policy: 'latest' is not one of exact, approximate"),
        ({"image_qos": "best_effort"}, "image_qos: 'best_effort' is not one of sensor_data"),
    ],
)
def test_each_bad_value_is_named(changes: dict, message: str) -> None:
    problems = check_values({**DEFAULTS, **changes})
    assert any(problem.startswith(message) for problem in problems), problems


def test_all_problems_are_reported_together() -> None:
    with pytest.raises(ConfigError) as raised:
        node_params_from_values({**DEFAULTS, "mode": "mono", "min_inliers": 2})
    text = str(raised.value)
    assert "mode: 'mono'" in text and "min_inliers: 2 is outside" in text


def test_image_size_zero_means_the_image_size() -> None:
    params = node_params_from_values({**DEFAULTS, "input_width": 0, "input_height": 0})
    assert params.matcher.input_size is None
    assert node_params_from_values(DEFAULTS).matcher.input_size == (640, 480)


def test_declare_reads_overrides_and_lists_every_rejection(context) -> None:
    overrides = [
        Parameter("ransac_threshold_px", value=3),  # int for a float parameter
        Parameter("sync_queue_size", value=0),  # below the range
        Parameter("mode", value="mono"),  # not a choice
    ]
    node = Node("edm", context=context, parameter_overrides=overrides)
    try:
        with pytest.raises(ConfigError) as raised:
            declare_node_params(node)
    finally:
        node.destroy_node()
    text = str(raised.value)
    assert "ransac_threshold_px" in text and "(write 1.0, not 1)" in text
    assert "sync_queue_size" in text and "out of range" in text
    assert "mode: 'mono' is not one of stereo, sequential" in text


def test_declare_applies_valid_overrides(context) -> None:
    overrides = [Parameter(name, value=value) for name, value in TEST_PARAMS.items()]
    node = Node("edm", context=context, parameter_overrides=overrides)
    try:
        params = declare_node_params(node)
        descriptor = node.describe_parameter("min_inliers")
    finally:
        node.destroy_node()
    assert params.matcher.input_size == (160, 128) and params.device == "cpu"
    assert params.matcher.match_threshold == 0.0 and params.mode == "stereo"
    assert descriptor.integer_range[0].from_value == 5


def test_runtime_updates_are_checked_and_read_only_ones_refused() -> None:
    current = node_params_from_values(DEFAULTS)
    assert updated_node_params(current, {"min_inliers": 40}).min_inliers == 40
    with pytest.raises(ConfigError, match="ransac_method: 'lmeds' is not one of"):
        updated_node_params(current, {"ransac_method": "lmeds"})
    with pytest.raises(ConfigError, match="device: read-only, set it in the params file"):
        updated_node_params(current, {"device": "cpu"})
    with pytest.raises(ConfigError, match="threshold: unknown parameter"):
        updated_node_params(current, {"threshold": 1.0})


@pytest.mark.parametrize("mode", ["stereo", "sequential"])
def test_config_files_hold_every_parameter_with_its_type(mode: str) -> None:
    values: dict = {}
    for name in ("matcher.yaml", f"{mode}.yaml"):
        document = yaml.safe_load((CONFIG_DIR / name).read_text())
        assert list(document) == ["/**"]
        values.update(document["/**"]["ros__parameters"])
    assert sorted(values) == sorted(DEFAULTS)
    assert check_values(values) == []
    assert values["mode"] == mode


def test_every_parameter_is_documented() -> None:
    text = (CONFIG_DIR.parent / "docs" / "ros_node.md").read_text()
    missing = [row.name for row in PARAMS if f"`{row.name}`" not in text]
    assert missing == []
