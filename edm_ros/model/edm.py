"""EDM: Efficient Deep Feature Matching (Li, Rao, Pan, 2025), in plain PyTorch.

The file reads top-down like the paper's Fig. 2: building blocks, the backbone, the Correlation
Injection Module (CIM), coarse matching (dual-softmax, top-K row maxima), the bidirectional
axis-based regression head (ABRHead), and :class:`EDM`, whose ``forward`` is the four stages.

Attribute names follow the released checkpoint, so it loads strictly without a rename table.
Quirks of the official implementation that change numbers are kept on purpose and marked
"official code:"; they are what makes the released weights work.

Shape letters: ``B`` pairs, ``H, W`` network input, ``Hc, Wc = H/8, W/8`` the coarse grid,
``L = Hc*Wc``, ``C`` channels, ``K`` top-K candidates. Points are (x, y) network-input pixels.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from edm_ros.model.config import COARSE_STRIDE, EDMConfig, MatcherConfig, num_candidates

#: Above this many entries the similarity matrix is computed in row blocks of this size (640x480:
#: 4800^2 = 23 M entries, one piece; 1152^2: 20736^2 = 430 M entries = 1.7 GB, in blocks of
#: 134 MB: MKL's product of 1616 rows runs at ~95 GFLOP/s here, of 404 rows at ~80).
COARSE_CHUNK_ELEMENTS = 2**25

#: On the CPU the elementwise passes over a similarity matrix take row slices of about this many
#: entries (4 MB): a slice and its scratch copy stay in the last-level cache from one pass to the
#: next, where a whole 33 MB block went to memory and back on every pass (2-7x slower per pass).
SLICE_ELEMENTS = 2**20


class Candidates(NamedTuple):
    """Fixed-size top-K output of EDM, sorted by coarse confidence (descending) per pair."""

    points0: Tensor  # [B, K, 2] coarse cell corners in image 0, network-input pixels
    points1: Tensor  # [B, K, 2] best cell in image 1 for each point0
    confidence: Tensor  # [B, K] dual-softmax value in [0, 1]
    offsets01: Tensor  # [B, K, 2] refinement of points1, in cells ([-0.5, 0.5])
    offsets10: Tensor  # [B, K, 2] refinement of points0, in cells
    fine_confidence01: Tensor  # [B, K] P_f for direction 0 -> 1
    fine_confidence10: Tensor  # [B, K] P_f for direction 1 -> 0


def _exporting() -> bool:
    """True while torch traces or compiles the model (ONNX export): no data-dependent branches."""
    return torch.jit.is_tracing() or torch.compiler.is_compiling()


# --------------------------------------------------------------------------------------------
# Building blocks


class ConvBN(nn.Module):
    """Conv (no bias) + BatchNorm + optional activation ("Conv2d_BN_Act" / "Conv1d_BN_Act")."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 1,
        groups: int = 1,
        act: nn.Module | None = None,
        dims: int = 2,
    ) -> None:
        super().__init__()
        conv, norm = (nn.Conv2d, nn.BatchNorm2d) if dims == 2 else (nn.Conv1d, nn.BatchNorm1d)
        self.c = conv(
            in_channels,
            out_channels,
            kernel_size,
            padding=kernel_size // 2,
            groups=groups,
            bias=False,
        )
        self.bn = norm(out_channels)
        self.act = act if act is not None else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.bn(self.c(x)))


class BasicBlock(nn.Module):
    """ResNet basic block; the 1x1 projection exists only where the block strides."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, padding=1, bias=False)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.downsample: nn.Module | None = None
        if stride != 1:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: Tensor) -> Tensor:
        # In place where autograd allows it: at 1/2 resolution a fresh tensor costs page faults.
        y = F.relu(self.bn1(self.conv1(x)), inplace=True)
        y = self.bn2(self.conv2(y))
        shortcut = x if self.downsample is None else self.downsample(x)
        return F.relu(y.add_(shortcut), inplace=True)


def _stage(in_channels: int, out_channels: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        BasicBlock(in_channels, out_channels, stride), BasicBlock(out_channels, out_channels)
    )


# --------------------------------------------------------------------------------------------
# 1. Backbone: a narrow, deep ResNet-18 variant (no max-pool) plus a 1/8 "fine" branch


class Backbone(nn.Module):
    """Shared CNN. Returns features at 1/8, 1/16, 1/32 and the fine features at 1/8."""

    def __init__(self, block_dims: tuple[int, int, int, int, int], fine_dim: int) -> None:
        super().__init__()
        d2, d4, d8, d16, d32 = block_dims
        self.conv1 = nn.Conv2d(1, d2, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(d2)
        self.layer1 = _stage(d2, d2, 1)  # 1/2
        self.layer2 = _stage(d2, d4, 2)  # 1/4
        self.layer3 = _stage(d4, d8, 2)  # 1/8
        self.layer4 = _stage(d8, d16, 2)  # 1/16
        self.layer5 = _stage(d16, d32, 2)  # 1/32
        self.fine_conv = nn.Sequential(
            _stage(d8, d8, 1), nn.Conv2d(d8, fine_dim, 1, bias=False), nn.BatchNorm2d(fine_dim)
        )

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """images [N, 1, H, W] -> f8 [N, d8, H/8, W/8], f16, f32, fine [N, fine_dim, H/8, W/8]."""
        x = F.relu(self.bn1(self.conv1(images)))
        f8 = self.layer3(self.layer2(self.layer1(x)))
        f16 = self.layer4(f8)
        f32 = self.layer5(f16)
        return f8, f16, f32, self.fine_conv(f8)


# --------------------------------------------------------------------------------------------
# 2. Correlation Injection Module: attention at 1/32, then injection down to 1/8


def rope_tables(
    grid: tuple[int, int], image_size: tuple[int, int], train_size: tuple[int, int], dim: int
) -> tuple[Tensor, Tensor]:
    """RoPE cos/sin tables for a grid of 1/32 tokens, positions normalised to the training size.

    Args:
        grid: (h, w) tokens at 1/32.
        image_size: (H, W) of the network input (NPE "test" size).
        train_size: (H, W) the model was trained at (NPE "train" size).
        dim: feature channels (multiple of 4).

    Returns:
        cos, sin: [1, h, w, dim] float16. Channels (4k, 4k+1) rotate by row angle i*f_k and
        (4k+2, 4k+3) by column angle j*f_k, f_k = 10000^(-k/(dim/4)).
    """
    h, w = grid
    # Official code: 1-based positions, scaled as (pos * train) / test in float32, and sin/cos
    # rounded to float16. Kept exactly: the released weights were trained with these tables.
    rows = torch.ones(h, w).cumsum(0).unsqueeze(-1) * train_size[0] / image_size[0]
    cols = torch.ones(h, w).cumsum(1).unsqueeze(-1) * train_size[1] / image_size[1]
    freqs = torch.exp(torch.arange(0, dim // 4, 1).float() * (-math.log(10000.0) / (dim // 4)))
    tables = []
    for fn in (torch.cos, torch.sin):
        table = torch.zeros(h, w, dim // 2, dtype=torch.float16)
        table[:, :, 0::2] = fn(rows * freqs)
        table[:, :, 1::2] = fn(cols * freqs)
        tables.append(table.repeat_interleave(2, dim=-1).unsqueeze(0))
    return tables[0], tables[1]


def apply_rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate adjacent channel pairs (a, b) -> (a cos - b sin, b cos + a sin). x: [N, h, w, C]."""
    a, b = x.unflatten(-1, (-1, 2)).unbind(-1)
    rotated = torch.stack((-b, a), dim=-1).flatten(-2)
    return x * cos + rotated * sin


class AttentionLayer(nn.Module):
    """Self- or cross-attention layer at 1/32 ("AG_RoPE_EncoderLayer" with aggregation size 1).

    Cosine-similarity softmax attention with a fixed scale, RoPE on queries and keys in self layers,
    and an FFN on [input, message].
    """

    def __init__(self, d_model: int, num_heads: int, scale: float, use_rope: bool) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.scale = scale
        self.use_rope = use_rope
        self.q_proj = nn.Linear(d_model, d_model, bias=False)
        self.k_proj = nn.Linear(d_model, d_model, bias=False)
        self.v_proj = nn.Linear(d_model, d_model, bias=False)
        self.merge = nn.Linear(d_model, d_model, bias=False)
        self.mlp = nn.Sequential(
            nn.Linear(2 * d_model, 2 * d_model, bias=False),
            nn.LeakyReLU(),
            nn.Linear(2 * d_model, d_model, bias=False),
        )
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)

    def forward(self, x: Tensor, source: Tensor, rope: tuple[Tensor, Tensor]) -> Tensor:
        """x [N, C, h, w] attends to source [N, C, h', w']; returns the updated x."""
        n, c, h, w = x.shape
        # Official code: the same norm1 normalises both the queries and the source.
        query = self.q_proj(self.norm1(x.permute(0, 2, 3, 1)))  # [N, h, w, C]
        source_nhwc = self.norm1(source.permute(0, 2, 3, 1))
        key, value = self.k_proj(source_nhwc), self.v_proj(source_nhwc)
        if self.use_rope:
            query, key = apply_rope(query, *rope), apply_rope(key, *rope)
        heads = (n, -1, self.num_heads, c // self.num_heads)
        query = F.normalize(query.reshape(heads), p=2, dim=-1).transpose(1, 2)  # [N, heads, L, d]
        key = F.normalize(key.reshape(heads), p=2, dim=-1).transpose(1, 2)  # [N, heads, S, d]
        # softmax(scale * cos) V; the fused kernel never holds the [heads, L, S] logits whole.
        message = F.scaled_dot_product_attention(
            query, key, value.reshape(heads).transpose(1, 2), scale=self.scale
        )
        message = self.merge(message.transpose(1, 2).reshape(n, -1, c))  # [N, L, C]
        message = message.reshape(n, h, w, c)
        update = self.norm2(self.mlp(torch.cat([x.permute(0, 2, 3, 1), message], dim=-1)))
        return x + update.permute(0, 3, 1, 2)


class AttentionStack(nn.Module):
    """L (self, cross) pairs; a cross layer updates image 0 first, then image 1 from the new 0."""

    def __init__(self, config: EDMConfig) -> None:
        super().__init__()
        self.train_size = config.train_size
        self._rope_cache: dict[tuple, tuple[Tensor, Tensor]] = {}
        self.layers = nn.ModuleList(
            AttentionLayer(config.d_model, config.num_heads, config.attention_scale, kind == "self")
            for _ in range(config.num_attention_pairs)
            for kind in ("self", "cross")
        )

    def forward(
        self, feat0: Tensor, feat1: Tensor, image_size: tuple[int, int]
    ) -> tuple[Tensor, Tensor]:
        """feat0, feat1: [B, C, h, w] tokens at 1/32 -> transformed, same shapes."""
        grid = (feat0.shape[-2], feat0.shape[-1])
        key = (grid, image_size, feat0.shape[1], feat0.device)
        if key not in self._rope_cache:  # built once per input size and device
            tables = rope_tables(grid, image_size, self.train_size, feat0.shape[1])
            self._rope_cache[key] = (tables[0].to(feat0.device), tables[1].to(feat0.device))
        rope = self._rope_cache[key]
        for layer in self.layers:
            if layer.use_rope:  # self-attention, shared weights: both images in one batch
                both = torch.cat([feat0, feat1])
                feat0, feat1 = layer(both, both, rope).chunk(2)
            else:  # official code: sequential cross update, image 1 sees the new image 0
                feat0 = layer(feat0, feat1, rope)
                feat1 = layer(feat1, feat0, rope)
        return feat0, feat1


def _upsample2(x: Tensor) -> Tensor:
    return F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)


class CIM(nn.Module):
    """Correlation Injection Module (the "neck" in the released weights).

    Attention on the 1/32 features, then two injection layers push the correlations down:
    f16 <- dwconv16(fc16(f16) * up(att32(f32)) + up(f32)), and the same from 1/16 to 1/8.
    """

    def __init__(self, config: EDMConfig) -> None:
        super().__init__()
        _, _, d8, d16, d32 = config.block_dims
        d = config.d_model
        self.fc32 = ConvBN(d32, d)
        self.fc16 = ConvBN(d16, d)
        self.fc8 = ConvBN(d8, d)
        self.att32 = ConvBN(d, d, act=nn.Sigmoid())
        self.att16 = ConvBN(d, d, act=nn.Sigmoid())
        self.dwconv16 = nn.Sequential(ConvBN(d, d, 3, groups=d, act=nn.GELU()), ConvBN(d, d))
        self.dwconv8 = nn.Sequential(ConvBN(d, d, 3, groups=d, act=nn.GELU()), ConvBN(d, d))
        self.loftr_32 = AttentionStack(config)

    def forward(
        self, f8: Tensor, f16: Tensor, f32: Tensor, image_size: tuple[int, int]
    ) -> tuple[Tensor, Tensor]:
        """Backbone features of both images [2B, ...] -> coarse features [B, C, Hc, Wc] each."""
        batch = f32.shape[0] // 2
        feat0, feat1 = self.fc32(f32).split(batch)
        f32 = torch.cat(self.loftr_32(feat0, feat1, image_size))
        f16 = self.dwconv16(self.fc16(f16) * _upsample2(self.att32(f32)) + _upsample2(f32))
        f8 = self.dwconv8(self.fc8(f8) * _upsample2(self.att16(f16)) + _upsample2(f16))
        coarse0, coarse1 = f8.split(batch)
        return coarse0, coarse1


# --------------------------------------------------------------------------------------------
# 3. Coarse matching: dual-softmax and top-K row maxima


class Workspace:
    """Large scratch tensors kept from one inference call to the next, by name.

    A fresh 92 MB similarity matrix (640x480) costs tens of milliseconds of page faults on every
    call; a kept one costs nothing after the first. Inference only, one call at a time.
    """

    def __init__(self) -> None:
        self._buffers: dict[str, Tensor] = {}

    def buffer(self, name: str, shape: tuple[int, ...], like: Tensor) -> Tensor:
        """A contiguous tensor of ``shape``, dtype and device of ``like``; contents undefined."""
        numel = math.prod(shape)
        kept = self._buffers.get(name)
        same_kind = kept is not None and (kept.dtype, kept.device) == (like.dtype, like.device)
        if kept is None or not same_kind or kept.numel() < numel:
            kept = torch.empty(numel, dtype=like.dtype, device=like.device)
            self._buffers[name] = kept
        return kept[:numel].view(shape)


def coarse_matrix_fits_in_one_piece(image_size: tuple[int, int]) -> bool:
    """Whether the L x L similarity of a (W, H) input is at most ``COARSE_CHUNK_ELEMENTS``."""
    num_cells = (image_size[0] // COARSE_STRIDE) * (image_size[1] // COARSE_STRIDE)
    return num_cells * num_cells <= COARSE_CHUNK_ELEMENTS


class TopK(NamedTuple):
    """Coarse candidates: for the K most confident cells of image 0, their best cell in image 1."""

    rows: Tensor  # [B, K] cell index in image 0 (row-major over the Hc x Wc grid)
    cols: Tensor  # [B, K] cell index in image 1
    confidence: Tensor  # [B, K] dual-softmax value, descending


def similarity(
    coarse0: Tensor, coarse1: Tensor, temperature: float, out: Tensor | None = None
) -> Tensor:
    """S = (f0 / sqrt(C)) (f1 / sqrt(C))^T / tau. f0, f1: [B, L, C] -> S: [B, L0, L1].

    ``out``: where to write S (a reused buffer, see :class:`Workspace`); None allocates.
    """
    return _scaled_similarity(_scaled(coarse0), _scaled(coarse1), temperature, out)


def _scaled(features: Tensor) -> Tensor:
    return features / features.shape[-1] ** 0.5


def _scaled_similarity(
    scaled0: Tensor, scaled1: Tensor, temperature: float, out: Tensor | None
) -> Tensor:
    # 1/tau on the features: one pass over [B, L0, C] instead of one over the L0 x L1 result.
    return torch.bmm(scaled0 / temperature, scaled1.transpose(1, 2), out=out)


def dual_softmax(coarse0: Tensor, coarse1: Tensor, temperature: float) -> Tensor:
    """Full confidence matrix P = softmax_rows(S) * softmax_cols(S): [B, L0, L1] (training)."""
    sim = similarity(coarse0, coarse1, temperature)
    return F.softmax(sim, dim=1) * F.softmax(sim, dim=2)


#: float32 exp() of arguments below about -87.3 is subnormal, and x86 CPUs compute those about
#: 20x slower (4.5x for a whole 640x480 similarity matrix of random weights). Inference keeps
#: exp's arguments above this one: the fast path (shifted by the global peak) takes exp as 0
#: below it (rows that small already lose precision in float32, and those whose sum underflows
#: go to the log-domain path), the log-domain path clamps them to it (see :func:`_logsumexp`).
EXP_FLUSH = -87.0


def _exp_(x: Tensor) -> Tensor:
    """exp(x) in place; on the CPU 0 where x < EXP_FLUSH (flush to zero). Any shape."""
    if x.is_cuda or _exporting() or not bool(x.amin() < EXP_FLUSH):
        return x.exp_()
    x.clamp_min_(EXP_FLUSH).exp_()
    return F.threshold(x, 1.0001 * math.exp(EXP_FLUSH), 0.0, inplace=True)


def dual_softmax_row_max(
    coarse0: Tensor,
    coarse1: Tensor,
    temperature: float,
    chunk_rows: int | None = None,
    workspace: Workspace | None = None,
    top_k: int | None = None,
) -> tuple[Tensor, Tensor]:
    """Row maxima of the dual-softmax matrix P = softmax_rows(S) * softmax_cols(S).

    Equal to the official exp / L1-normalise formulation wherever that one is finite, without
    materialising P or overflowing.

    Args:
        coarse0, coarse1: [B, L, C] coarse features.
        temperature: dual-softmax temperature.
        chunk_rows: rows of S per chunk (bounded memory for large inputs); None = one piece.
        workspace: keeps the similarity buffers across calls (inference); None allocates.
        top_k: only rows that can be among the ``top_k`` largest maxima need exact values; the
            chunked path gives the others a lower bound (below the K-th maximum). None = all exact.

    Returns:
        row_max [B, L0] confidence, row_argmax [B, L0] index into image 1's cells.
    """
    if chunk_rows is None:
        row_max, row_argmax = _row_max_in_place(coarse0, coarse1, temperature, workspace)
        # A CUDA graph cannot wait for the host: it keeps the fast path, as exported graphs do.
        capturing = row_max.is_cuda and torch.cuda.is_current_stream_capturing()
        if _exporting() or capturing or bool(torch.isfinite(row_max).all()):
            return row_max, row_argmax
        # Similarities spread over more than float32's exp range: take the log-domain path.
    return _row_max_log_domain(coarse0, coarse1, temperature, chunk_rows, workspace, top_k)


def _buffer(workspace: Workspace | None, name: str, shape: tuple[int, ...], like: Tensor) -> Tensor:
    if workspace is None:
        return torch.empty(shape, dtype=like.dtype, device=like.device)
    return workspace.buffer(name, shape, like)


def _similarity_into(
    scaled0: Tensor, scaled1: Tensor, temperature: float, workspace: Workspace | None
) -> Tensor:
    """S of scaled features [B, L0, C], [B, L1, C] in the workspace's similarity buffer."""
    shape = (scaled0.shape[0], scaled0.shape[1], scaled1.shape[1])
    out = _buffer(workspace, "similarity", shape, scaled0)
    return _scaled_similarity(scaled0, scaled1, temperature, out)


def cache_slices(x: Tensor) -> tuple[Tensor, ...]:
    """x [B, R, N] as row slices (views) [B, r, N] of about ``SLICE_ELEMENTS`` entries on the
    CPU; one piece on CUDA and in exported graphs."""
    if x.is_cuda or _exporting():
        return (x,)
    return x.split(max(1, SLICE_ELEMENTS // x.shape[2]), dim=1)


def row_max(x: Tensor) -> tuple[Tensor, Tensor]:
    """``x.max(dim=-1)``: maxima and the first index of each, x [..., N] -> two [...].

    On the CPU torch.max with indices runs at a third of amax's speed: there the maximum comes
    from amax over segments of up to 64 entries, its index from the first segment holding it.
    """
    values, indices, _ = _row_max(x, runner_up=False)
    return values, indices


def row_max_and_runner_up(x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """:func:`row_max` and each row's largest entry other than the one at its index (the
    maximum again where it is repeated). x [..., N] -> three [...]."""
    values, indices, runner_up = _row_max(x, runner_up=True)
    assert runner_up is not None
    return values, indices, runner_up


def _row_max(x: Tensor, runner_up: bool) -> tuple[Tensor, Tensor, Tensor | None]:
    segment = math.gcd(x.shape[-1], 64)
    if x.is_cuda or _exporting() or segment < 16:
        values, indices = x.max(dim=-1)
        return values, indices, x.topk(2, dim=-1).values[..., 1] if runner_up else None
    segments = x.unflatten(-1, (-1, segment))  # [..., N / segment, segment]
    segment_max = segments.amax(dim=-1)
    values = segment_max.amax(dim=-1, keepdim=True)
    first = (segment_max == values).byte().argmax(dim=-1, keepdim=True)  # [..., 1]
    holder = segments.gather(-2, first[..., None].expand(*first.shape, segment)).squeeze(-2)
    offset = (holder == values).byte().argmax(dim=-1, keepdim=True)
    indices = (first * segment + offset).squeeze(-1)
    others = None
    if runner_up:  # the other segments' maxima and the holder's other entries: no pass over x
        others = torch.maximum(
            segment_max.scatter(-1, first, -torch.inf).amax(dim=-1),
            holder.scatter(-1, offset, -torch.inf).amax(dim=-1),
        )
    return values.squeeze(-1), indices, others


def _row_max_of_slices(parts: Iterable[Tensor]) -> tuple[Tensor, Tensor]:
    """:func:`row_max` of the row slices [B, r, N] of one matrix, joined: two [B, R]."""
    values, indices = zip(*(row_max(part) for part in parts))
    return torch.cat(values, 1), torch.cat(indices, 1)


def _row_max_in_place(
    coarse0: Tensor, coarse1: Tensor, temperature: float, workspace: Workspace | None
) -> tuple[Tensor, Tensor]:
    """Fast path. With E = exp(S - max S), row sums R and column sums C, P_ij = E_ij^2 / (R_i C_j),
    so argmax_j P_ij = argmax_j E_ij / sqrt(C_j): one matrix, updated in place (the official
    code keeps two normalised copies), two sweeps over it in cache-sized row slices. Rows whose
    sum underflows come out NaN."""
    exp_sim = _similarity_into(_scaled(coarse0), _scaled(coarse1), temperature, workspace)
    peak = exp_sim.amax(dim=(1, 2), keepdim=True)
    row_sums, col_sums = [], torch.zeros_like(exp_sim[:, :1])
    for part in cache_slices(exp_sim):
        _exp_(part.sub_(peak))
        row_sums.append(part.sum(dim=2))
        # Column sums as a product with ones: ONNX Runtime's ReduceSum over the middle axis
        # takes 15x its MatMul's time here (640x480: 81 ms).
        col_sums += torch.bmm(part.new_ones(part.shape[0], 1, part.shape[1]), part)
    scale = col_sums.rsqrt()
    best, best_col = _row_max_of_slices(part.mul_(scale) for part in cache_slices(exp_sim))
    return best.square() / torch.cat(row_sums, 1), best_col


def _row_max_log_domain(
    coarse0: Tensor,
    coarse1: Tensor,
    temperature: float,
    chunk_rows: int | None,
    workspace: Workspace | None,
    top_k: int | None = None,
) -> tuple[Tensor, Tensor]:
    """Robust path: log P_ij = 2 S_ij - logsumexp_j S_ij - logsumexp_i S_ij. S comes in blocks
    of ``chunk_rows`` rows, each pass over a block in cache-sized row slices; the column
    log-sums c_j accumulate over slices in float64 (hundreds of float32 log-additions would add
    up their rounding errors). Every block and slice reuses the same two buffers: a fresh
    temporary per step can leave the allocator holding a gigabyte (1152x1152).

    The best column of row i maximises 2 S_ij - c_j. The sums seen up to a row's slice, c'_j,
    are at most c_j, so 2 S_ij - c'_j bounds each column's score from above: where the column
    that is best by c' scores (by c) above the second best bound of its row, it is the best.
    Only the other rows (and with ``top_k`` only those whose bound can reach the K-th maximum)
    have their similarities computed a second time."""
    num_rows = coarse0.shape[1]
    step = num_rows if chunk_rows is None else max(1, min(chunk_rows, num_rows))
    scaled0, scaled1 = _scaled(coarse0), _scaled(coarse1)
    row_lse, candidates, candidate_sims, bounds = [], [], [], []
    col_lse64 = torch.full_like(coarse1[..., 0], -torch.inf, dtype=torch.float64)  # [B, L1]
    for start in range(0, num_rows, step):
        block = _similarity_into(scaled0[:, start : start + step], scaled1, temperature, workspace)
        for sim in cache_slices(block):
            shifted = _buffer(workspace, "shifted", sim.shape, sim)
            low, row_peak = sim.amin(), sim.amax(dim=2)
            if bool(row_peak.max() - low < -EXP_FLUSH):  # trained weights: every slice, one exp
                slice_row_lse, slice_col_lse = _narrow_logsumexps(sim, row_peak, shifted)
            else:
                slice_col_lse = _logsumexp(sim, 1, sim.amax(dim=1), shifted)
                slice_row_lse = _logsumexp(sim, 2, row_peak, shifted)
            col_lse64 = torch.logaddexp(col_lse64, slice_col_lse.double())
            col_lse = col_lse64.float()
            row_lse.append(slice_row_lse)
            bound = _score(sim, col_lse[:, None, :], out=shifted)
            _, candidate, runner_up = row_max_and_runner_up(bound)
            candidates.append(candidate)
            candidate_sims.append(torch.gather(sim, 2, candidate[..., None])[..., 0])
            bounds.append(runner_up)
    lse, best_col, second = torch.cat(row_lse, 1), torch.cat(candidates, 1), torch.cat(bounds, 1)
    best = _score(torch.cat(candidate_sims, 1), torch.gather(col_lse, 1, best_col))
    values = torch.exp(best - lse)  # [B, L0]: exact where best > second, else a lower bound
    unsure = best <= second
    if top_k is not None:  # rows whose upper bound exp(second - lse) cannot reach the K-th value
        kth = torch.topk(values, top_k, dim=1).values[:, -1:]
        unsure &= torch.exp(second - lse) >= kth
    for b, rows in enumerate(unsure):
        rows = rows.nonzero().squeeze(1)
        for start in range(0, rows.numel(), step):
            chunk = rows[start : start + step]
            sim = _similarity_into(
                scaled0[b : b + 1, chunk], scaled1[b : b + 1], temperature, workspace
            )
            score, col = _row_max_of_slices(
                _score(part, col_lse[b : b + 1, None, :], out=part) for part in cache_slices(sim)
            )
            values[b, chunk] = torch.exp(score[0] - lse[b, chunk])
            best_col[b, chunk] = col[0]
    return values, best_col


def _score(sim: Tensor, col_lse: Tensor, out: Tensor | None = None) -> Tensor:
    """2 S_ij - c_j, log P_ij up to the row's log-sum; col_lse broadcast against sim."""
    return torch.add(col_lse.neg(), sim, alpha=2.0, out=out)


def _narrow_logsumexps(sim: Tensor, row_peak: Tensor, shifted: Tensor) -> tuple[Tensor, Tensor]:
    """Row and column log-sums of sim [B, R, L1] whose spread (max - min) is below -EXP_FLUSH,
    from one exp: E_ij = exp(S_ij - m_i) (row maxima m) gives the row sums, and the column sums
    are sum_i w_i E_ij with w_i = exp(m_i - max m). Every factor and product is a normal float
    there, so no precision is lost. Returns row_lse [B, R], col_lse [B, L1]."""
    peak = row_peak.amax(dim=1, keepdim=True)  # [B, 1]
    exp_rows = torch.sub(sim, row_peak.unsqueeze(2), out=shifted).exp_()
    row_lse = exp_rows.sum(dim=2).log_().add_(row_peak)
    weights = (row_peak - peak).exp_().unsqueeze(1)  # [B, 1, R]
    col_lse = torch.bmm(weights, exp_rows).squeeze(1).log_().add_(peak)
    return row_lse, col_lse


def _logsumexp(x: Tensor, dim: int, peak: Tensor, shifted: Tensor) -> Tensor:
    """log sum_dim exp(x) of a finite x with its maxima ``peak`` along dim, computed in
    ``shifted`` (a buffer of x's shape); for slices that spread past -EXP_FLUSH.

    On the CPU arguments below EXP_FLUSH are clamped to it. Shifted by its peak every sum holds
    a 1, and the clamped entries add at most L * exp(EXP_FLUSH) < 1e-33: unlike :func:`_exp_`,
    no pass needs to set them to 0."""
    shifted = torch.sub(x, peak.unsqueeze(dim), out=shifted)
    if not x.is_cuda:
        shifted.clamp_min_(EXP_FLUSH)
    return shifted.exp_().sum(dim=dim).log_().add_(peak)


def select_top_k(row_max: Tensor, row_argmax: Tensor, k: int) -> TopK:
    """Keep the K rows with the highest confidence (official: no threshold, no mutual check)."""
    confidence, rows = torch.topk(row_max, k, dim=1, largest=True, sorted=True)
    return TopK(rows, torch.gather(row_argmax, 1, rows), confidence)


def cell_corners(cells: Tensor, grid_width: int) -> Tensor:
    """Cell indices [B, K] -> top-left pixel corners 8*(col, row) [B, K, 2] (official choice)."""
    col = cells % grid_width
    row = torch.div(cells, grid_width, rounding_mode="floor")
    return torch.stack([col, row], dim=-1).float() * COARSE_STRIDE


# --------------------------------------------------------------------------------------------
# 4. ABRHead: bidirectional axis-based regression with soft coordinate classification


class FineOutput(NamedTuple):
    """Head output for 2K rows: rows [0, K) refine image 1's point, rows [K, 2K) image 0's."""

    offsets: Tensor  # [B, 2K, 2] mu in cells, [-0.5, 0.5]
    sigma: Tensor  # [B, 2K, 2] uncertainty per axis, (0, 1)
    fine_confidence: Tensor  # [B, 2K] P_f = 1 - mean(sigma_x, sigma_y)


class ABRHead(nn.Module):
    """Axis-Based Regression head ("FineMatching" in the released weights).

    Per candidate, one fine and one coarse vector per image feed per-point MLPs (1x1 Conv1d + BN
    + GELU); for each axis, num_bins+1 logits give a soft-argmax offset and one logit gives sigma.
    """

    def __init__(self, d_model: int, num_bins: int) -> None:
        super().__init__()
        d, d2 = d_model, 2 * d_model

        def mlp(in_channels: int, out_channels: int) -> ConvBN:
            return ConvBN(in_channels, out_channels, act=nn.GELU(), dims=1)

        self.query_encoder = nn.Sequential(mlp(d, d), mlp(d, d))
        self.reference_encoder = nn.Sequential(mlp(d, d), mlp(d, d))
        self.merge_qr = nn.Sequential(mlp(d2, d2), mlp(d2, d2))
        self.x_head = nn.Sequential(mlp(d2, d2), nn.Conv1d(d2, num_bins + 2, 1))
        self.y_head = nn.Sequential(mlp(d2, d2), nn.Conv1d(d2, num_bins + 2, 1))
        # Bin centres in cells: k / N - 0.5 for k = 0..N (official: sum(p_k * k / N) - 0.5).
        self.bins: Tensor
        self.register_buffer(
            "bins", torch.arange(num_bins + 1).float() / num_bins, persistent=False
        )

    def forward(self, query: Tensor, reference: Tensor) -> FineOutput:
        """query, reference: [B, C, 2K] (fine + coarse feature of each side) -> FineOutput."""
        merged = self.merge_qr(
            torch.cat([self.query_encoder(query), self.reference_encoder(reference)], dim=1)
        )
        offsets, sigmas = [], []
        for head in (self.x_head, self.y_head):
            out = head(merged)  # [B, N+2, 2K]: N+1 bin logits, then the sigma logit
            probs = out[:, :-1].softmax(dim=1)
            offsets.append((probs * self.bins[None, :, None]).sum(dim=1) - 0.5)
            sigmas.append(torch.sigmoid(out[:, -1]))
        offset, sigma = torch.stack(offsets, dim=-1), torch.stack(sigmas, dim=-1)
        return FineOutput(offset, sigma, 1.0 - sigma.mean(dim=-1))


def stack_pairs(image0: Tensor, image1: Tensor) -> tuple[Tensor, Tensor]:
    """image0, image1 [B, 1, H, W] -> (images [2B, 1, H, W], pairs [B, 2]) for ``match_pairs``."""
    index = torch.arange(image0.shape[0], device=image0.device)
    return torch.cat([image0, image1]), torch.stack([index, index + image0.shape[0]], dim=1)


def _select_images(images: Tensor, order: Tensor) -> Tensor:
    """images[order] along the batch. Indexing keeps the memory format (index_select gives
    NCHW: a 10 ms copy of a channels-last 1/8 map here); exported graphs get a plain Gather."""
    return images.index_select(0, order) if _exporting() else images[order]


def _cells(features: Tensor) -> Tensor:
    """[N, C, h, w] -> [N, h*w, C], row-major cells; a view where features are channels-last."""
    return features.permute(0, 2, 3, 1).flatten(1, 2)


def gather_cells(features: Tensor, cells: Tensor) -> Tensor:
    """features [B, L, C], cells [B, K] -> [B, K, C]."""
    return torch.gather(features, 1, cells[..., None].expand(-1, -1, features.shape[-1]))


# --------------------------------------------------------------------------------------------
# EDM


class Features(NamedTuple):
    """Per-cell features of both images after stages 1-2, [B, L, C] each."""

    coarse0: Tensor  # CIM output, image 0
    coarse1: Tensor
    fine0: Tensor  # backbone fine branch, image 0
    fine1: Tensor


class EDM(nn.Module):
    """The EDM network: two grey images in, fixed-size top-K candidates out.

    Thresholds, the choice of refinement direction and the mapping to original pixels are not in
    the network: ``edm_ros.model.selection`` applies them after any backend.
    """

    def __init__(
        self, config: EDMConfig | None = None, topk_ratio: float = MatcherConfig.topk_ratio
    ) -> None:
        """K = int(topk_ratio * Hc * Wc) candidates per pair (official: 0.35)."""
        super().__init__()
        self.config = config or EDMConfig()
        self.topk_ratio = topk_ratio
        self.backbone = Backbone(self.config.block_dims, self.config.d_model)
        self.neck = CIM(self.config)
        self.fine_matching = ABRHead(self.config.d_model, self.config.num_bins)
        #: Scratch buffers kept across calls; set by ``model.inference.prepare_for_inference``.
        self.workspace: Workspace | None = None

    def forward(self, image0: Tensor, image1: Tensor) -> Candidates:
        """image0, image1: [B, 1, H, W] float32 in [0, 1]; H and W multiples of 32."""
        return self.match_pairs(*stack_pairs(image0, image1))

    def match_pairs(self, images: Tensor, pairs: Tensor) -> Candidates:
        """Match pairs drawn from a set of images, each image through the backbone once.

        Args:
            images: [N, 1, H, W] float32 in [0, 1]; H and W multiples of 32.
            pairs: [B, 2] int64 indices into images, (image0, image1) per pair; e.g. a stereo
                frame [previous left, left, right] with pairs [[1, 2], [0, 1]].
        """
        return self.match_backbone_levels(self.backbone(images), pairs)

    def match_backbone_levels(self, levels: tuple[Tensor, ...], pairs: Tensor) -> Candidates:
        """Stages 2-4 from the backbone's outputs (f8, f16, f32, fine; [N, ...] each) of the
        images that ``pairs`` [B, 2] index: what ``match_pairs`` does after the backbone."""
        features = self.cim_features(levels, pairs)  # 2. CIM
        height, width = (COARSE_STRIDE * n for n in levels[0].shape[-2:])
        top_k = self.match_coarse(features.coarse0, features.coarse1, (width, height))  # 3.
        refined = self.refine(*features, top_k.rows, top_k.cols)  # 4. ABRHead, both directions
        grid_width, k = width // COARSE_STRIDE, top_k.rows.shape[1]
        return Candidates(
            points0=cell_corners(top_k.rows, grid_width),
            points1=cell_corners(top_k.cols, grid_width),
            confidence=top_k.confidence,
            offsets01=refined.offsets[:, :k],
            offsets10=refined.offsets[:, k:],
            fine_confidence01=refined.fine_confidence[:, :k],
            fine_confidence10=refined.fine_confidence[:, k:],
        )

    def features(self, images: Tensor, pairs: Tensor) -> Features:
        """Stages 1-2: the shared backbone on every image, then the CIM on every pair.

        images [N, 1, H, W], pairs [B, 2] (see ``match_pairs``) -> four [B, L, C].
        """
        return self.cim_features(self.backbone(images), pairs)

    def cim_features(self, levels: tuple[Tensor, ...], pairs: Tensor) -> Features:
        """Stage 2: the CIM on every pair, from the backbone's outputs of N images [N, ...]."""
        order = torch.cat([pairs[:, 0], pairs[:, 1]])  # all images 0, then all images 1
        f8, f16, f32, fine = (_select_images(level, order) for level in levels)
        image_size = (COARSE_STRIDE * f8.shape[-2], COARSE_STRIDE * f8.shape[-1])  # (H, W)
        coarse0, coarse1 = self.neck(f8, f16, f32, image_size)
        fine0, fine1 = _cells(fine).chunk(2)
        return Features(_cells(coarse0), _cells(coarse1), fine0, fine1)

    def match_coarse(self, coarse0: Tensor, coarse1: Tensor, image_size: tuple[int, int]) -> TopK:
        """Stage 3: dual-softmax row maxima and the top K = ratio * L rows (image_size: (W, H))."""
        num_cells = coarse0.shape[1]
        chunk_rows = None
        # Exported graphs stay in one piece: ONNX/TensorRT have no stable logaddexp, and the
        # runtime plans the memory itself.
        if not coarse_matrix_fits_in_one_piece(image_size) and not _exporting():
            chunk_rows = COARSE_CHUNK_ELEMENTS // num_cells
        workspace = None if _exporting() else self.workspace
        k = num_candidates(image_size, self.topk_ratio)
        confidence, best_cols = dual_softmax_row_max(
            coarse0, coarse1, self.config.temperature, chunk_rows, workspace, top_k=k
        )
        return select_top_k(confidence, best_cols, k)

    def refine(
        self,
        coarse0: Tensor,
        coarse1: Tensor,
        fine0: Tensor,
        fine1: Tensor,
        rows: Tensor,
        cols: Tensor,
    ) -> FineOutput:
        """Run the ABRHead in both directions on candidates (rows[b, k] in 0, cols[b, k] in 1).

        fine*, coarse*: [B, L, C]; rows, cols: [B, K]. Returns 2K rows: 0->1 first, then 1->0.
        """
        side0 = gather_cells(fine0, rows) + gather_cells(coarse0, rows)  # [B, K, C]
        side1 = gather_cells(fine1, cols) + gather_cells(coarse1, cols)
        query = torch.cat([side0, side1], dim=1).transpose(1, 2)  # [B, C, 2K]
        reference = torch.cat([side1, side0], dim=1).transpose(1, 2)
        return self.fine_matching(query, reference)
