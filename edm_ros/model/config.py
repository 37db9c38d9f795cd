"""Configuration records of the EDM network and of a matcher deployment."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from numbers import Integral
from typing import Any

from edm_ros.errors import ConfigError

#: Stride of the coarse grid: one coarse cell covers 8x8 input pixels.
COARSE_STRIDE = 8
#: Network input sides must be multiples of this (the 1/32 level is upsampled exactly twice).
SIZE_MULTIPLE = 32
#: RoPE positions exist for at most this many 1/32 tokens per side (official code: 128x128).
MAX_TOKENS_PER_SIDE = 128


@dataclass(frozen=True)
class EDMConfig:
    """EDM architecture. Defaults are the released checkpoint (paper supp. + official code)."""

    block_dims: tuple[int, int, int, int, int] = (32, 64, 128, 256, 256)  # channels, 1/2 ... 1/32
    d_model: int = 256  # CIM and head width
    num_heads: int = 8  # 32 dims per head
    num_attention_pairs: int = 2  # (self, cross) pairs at 1/32: L = 2 in the paper's Fig. 2
    attention_scale: float = 20.0  # cosine attention logits = scale * cos(q, k)
    temperature: float = 0.1  # dual-softmax temperature tau
    num_bins: int = 16  # SCC intervals per axis (num_bins + 1 logits)
    train_size: tuple[int, int] = (832, 832)  # (H, W) the RoPE positions are normalised to (NPE)

    def __post_init__(self) -> None:
        if len(self.block_dims) != 5 or any(c <= 0 for c in self.block_dims):
            raise ConfigError(
                f"block_dims must be 5 positive channel counts, got {self.block_dims}"
            )
        if self.num_heads < 1:
            raise ConfigError(f"num_heads must be >= 1, got {self.num_heads}")
        # RoPE rotates channel quadruples of the whole d_model; each head takes d_model/num_heads.
        if self.d_model % 4 != 0 or self.d_model % self.num_heads != 0:
            raise ConfigError(
                f"d_model {self.d_model} must be divisible by 4 and by num_heads {self.num_heads}"
            )
        if self.temperature <= 0 or self.num_bins < 1 or self.num_attention_pairs < 1:
            raise ConfigError("temperature must be > 0, num_bins >= 1, num_attention_pairs >= 1")


@dataclass(frozen=True)
class MatcherConfig:
    """Per-deployment choices; they do not change the weights.

    The one owner of these settings: the matcher, the evaluation, the training validation and the
    node take a MatcherConfig; ``config.updated(match_threshold=0.05)`` changes a few by name.
    """

    input_size: tuple[int, int] | None = (640, 480)  # (W, H) pixels; None = image size to /32
    topk_ratio: float = 0.35  # K = int(ratio * Hc * Wc) coarse candidates (official configs)
    match_threshold: float = 0.2  # coarse confidence; 0.2 indoor/demos, 0.05 outdoor (official)
    fine_threshold: float = 1e-6  # on the fine confidence P_f (official configs)
    border: int = 0  # pixels of the original image (the official BORDER_RM counts 8-px cells)
    max_matches: int | None = None  # keep at most this many, highest coarse confidence first

    def __post_init__(self) -> None:
        if self.input_size is not None:
            # Lists (YAML, ROS parameters) and numpy integers become a plain (W, H) tuple.
            size = tuple(int(s) if isinstance(s, Integral) else s for s in self.input_size)
            check_network_size(size)  # type: ignore[arg-type]
            object.__setattr__(self, "input_size", size)
        if not 0.0 < self.topk_ratio <= 1.0:
            raise ConfigError(f"topk_ratio must be in (0, 1], got {self.topk_ratio}")
        if not 0.0 <= self.match_threshold <= 1.0:
            raise ConfigError(f"match_threshold must be in [0, 1], got {self.match_threshold}")
        if not 0.0 <= self.fine_threshold <= 1.0:
            raise ConfigError(f"fine_threshold must be in [0, 1], got {self.fine_threshold}")
        if self.border < 0:
            raise ConfigError(f"border must be >= 0 pixels, got {self.border}")
        if self.max_matches is not None and self.max_matches < 1:
            raise ConfigError(f"max_matches must be >= 1 or None, got {self.max_matches}")

    def updated(self, **settings: Any) -> MatcherConfig:
        """A copy with the named settings changed (validated as a new config).

        Raises:
            ConfigError: a name that is not a setting, or an invalid value.
        """
        names = [f.name for f in fields(self)]
        unknown = sorted(set(settings) - set(names))
        if unknown:
            raise ConfigError(
                f"unknown matcher setting(s) {', '.join(unknown)}; valid: {', '.join(names)}"
            )
        return replace(self, **settings)


def network_size_problems(
    size: tuple[object, ...], names: tuple[str, str] = ("input width", "input height")
) -> list[str]:
    """What is wrong with ``size`` = (W, H) as a network input size, one line per bad side.

    Args:
        size: (W, H) pixels.
        names: What the two sides are called in the lines (the node uses its parameter names).

    Returns:
        The problems; empty when the size is valid.
    """
    if len(size) != 2:
        return [f"input size must be (width, height), got {size!r}"]
    limit = SIZE_MULTIPLE * MAX_TOKENS_PER_SIDE
    return [
        f"{name} {side!r} is not a multiple of {SIZE_MULTIPLE} pixels in [{SIZE_MULTIPLE}, {limit}]"
        for name, side in zip(names, size)
        if not isinstance(side, int) or side < SIZE_MULTIPLE or side % SIZE_MULTIPLE or side > limit
    ]


def check_network_size(size: tuple[int, int]) -> None:
    """Raise ConfigError unless ``size`` = (W, H) is a valid network input size."""
    problems = network_size_problems(size)
    if problems:
        raise ConfigError("; ".join(problems))


def num_candidates(size: tuple[int, int], topk_ratio: float) -> int:
    """K for a (W, H) network input: int(ratio * Hc * Wc), as the official test script computes."""
    width, height = size
    cells = (width // COARSE_STRIDE) * (height // COARSE_STRIDE)
    return max(1, min(cells, int(cells * topk_ratio)))
