"""edm_ros: the EDM deep feature matcher (Li, Rao, Pan, 2025) for robots.

The public API is :class:`EDMMatcher` (numpy images in, :class:`MatchResult` out). Importing this
package loads no torch, ROS, ONNX Runtime or plotting: torch comes with :class:`EDMMatcher` on first
access, so readers of results and of the generated messages (``edm_ros.msg``) start fast.
"""

from __future__ import annotations

# The generated ROS messages (edm_ros.msg) may be installed in another directory than these sources
# (a venv prefix, a colcon install space); extend_path lets both halves form one package.
from pkgutil import extend_path
from typing import TYPE_CHECKING

__path__ = extend_path(__path__, __name__)

from edm_ros.errors import (
    BackendError,
    CheckpointError,
    ConfigError,
    EDMError,
    InputError,
)
from edm_ros.model.config import EDMConfig, MatcherConfig
from edm_ros.results import MatchResult

if TYPE_CHECKING:
    from edm_ros.matcher import EDMMatcher

__all__ = [
    "BackendError",
    "CheckpointError",
    "ConfigError",
    "EDMConfig",
    "EDMError",
    "EDMMatcher",
    "InputError",
    "MatchResult",
    "MatcherConfig",
]


def __getattr__(name: str) -> object:
    """Import the matcher (and with it torch and the backends) only when it is asked for."""
    if name == "EDMMatcher":
        from edm_ros.matcher import EDMMatcher

        return EDMMatcher
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
