"""edm_ros: the EDM deep feature matcher (Li, Rao, Pan, 2025) for robots.

The public API is :class:`EDMMatcher` (numpy images in, :class:`MatchResult` out). Importing this
package imports torch, numpy and OpenCV only: no ROS, no ONNX Runtime, no plotting.
"""

# The generated ROS messages (edm_ros.msg) may be installed in another directory than these sources
# (a venv prefix, a colcon install space); extend_path lets both halves form one package.
from pkgutil import extend_path

__path__ = extend_path(__path__, __name__)

from edm_ros.errors import (
    BackendError,
    CheckpointError,
    ConfigError,
    EDMError,
    InputError,
)
from edm_ros.matcher import EDMMatcher, MatchResult
from edm_ros.model.config import EDMConfig, MatcherConfig

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
