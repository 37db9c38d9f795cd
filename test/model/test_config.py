from __future__ import annotations

import pytest

from edm_ros.errors import ConfigError
from edm_ros.model.config import EDMConfig, MatcherConfig


def test_official_architecture_is_valid():
    config = EDMConfig()
    assert (config.d_model, config.num_heads) == (256, 8)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"num_heads": 6}, "divisible by 4 and by num_heads 6"),
        ({"d_model": 250, "num_heads": 2}, "divisible by 4 and by num_heads 2"),
        ({"num_heads": 0}, "num_heads must be >= 1"),
        ({"block_dims": (32, 64, 128, 256)}, "block_dims"),
        ({"temperature": 0.0}, "temperature must be > 0"),
    ],
)
def test_invalid_architecture_is_rejected(changes, message):
    with pytest.raises(ConfigError, match=message):
        EDMConfig(**changes)


def test_matcher_settings_are_updated_by_name_and_validated_again():
    config = MatcherConfig().updated(match_threshold=0.05, input_size=[320, 256])
    assert config == MatcherConfig(input_size=(320, 256), match_threshold=0.05)
    with pytest.raises(ConfigError, match=r"unknown matcher setting.*valid: input_size"):
        config.updated(threshold=0.1)
    with pytest.raises(ConfigError, match="match_threshold must be in"):
        config.updated(match_threshold=2.0)
