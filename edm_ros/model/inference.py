"""Deployment-time preparation of an EDM network: the same arithmetic, fewer passes over memory.

``edm.py`` is the network as the paper describes it (and as training uses it). For inference,
:func:`prepare_for_inference` gives a copy of it three changes that leave its results within the
parity tolerances:

- every eval-mode BatchNorm that follows a convolution is folded into that convolution's weight
  and bias (one pass over the activation instead of two);
- on the CPU the backbone's and the CIM's weights are channels-last (NHWC), so their
  convolutions run in that layout (the 32-channel 1/2-resolution layers at about twice the NCHW
  throughput here, the CIM's depthwise convolutions at about 1.8 times);
- the coarse similarity matrix is written into a buffer kept across calls (:class:`Workspace`).
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from edm_ros.model.edm import EDM, Workspace

#: (convolution, BatchNorm) attribute pairs: Backbone and BasicBlock, then ConvBN.
_CONV_BN_ATTRIBUTES = (("conv1", "bn1"), ("conv2", "bn2"), ("c", "bn"))


def prepare_for_inference(model: EDM, device: torch.device) -> EDM:
    """An eval-mode copy of ``model`` on ``device`` with folded BatchNorms (and NHWC on the CPU).

    The original is left unchanged (it may still be trained or exported).
    """
    prepared = copy.deepcopy(model).eval().to(device)
    fold_batch_norms(prepared)
    if device.type == "cpu":
        for part in (prepared.backbone, prepared.neck):
            part.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    prepared.workspace = Workspace()
    return prepared


def fold_batch_norms(module: nn.Module) -> None:
    """Fold each eval-mode BatchNorm into the convolution before it, in place (BN -> Identity).

    Folded: the attribute pairs of :data:`_CONV_BN_ATTRIBUTES`, and a convolution followed by a
    BatchNorm inside a Sequential (the backbone's projections and fine branch).
    """
    for parent in list(module.modules()):
        for conv_name, bn_name in _CONV_BN_ATTRIBUTES:
            folded = _folded(getattr(parent, conv_name, None), getattr(parent, bn_name, None))
            if folded is not None:
                setattr(parent, conv_name, folded)
                setattr(parent, bn_name, nn.Identity())
        if isinstance(parent, nn.Sequential):
            for index in range(len(parent) - 1):
                folded = _folded(parent[index], parent[index + 1])
                if folded is not None:
                    parent[index], parent[index + 1] = folded, nn.Identity()


def _folded(conv: object, norm: object) -> nn.Module | None:
    """``conv`` with ``norm`` folded in; None unless they are a conv and an eval-mode BatchNorm."""
    if (
        isinstance(conv, nn.modules.conv._ConvNd)
        and isinstance(norm, nn.modules.batchnorm._BatchNorm)
        and not norm.training
    ):
        return fuse_conv_bn_eval(conv, norm)
    return None
