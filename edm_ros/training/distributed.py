"""Data-parallel training with torchrun and DistributedDataParallel.

    torchrun --nproc-per-node 4 -m edm_ros.cli.train --config run.yaml --device cuda

torchrun starts one process per device and sets ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE``;
:func:`join_process_group` reads them. Every process then trains on its share of each batch
(``batch_size`` stays the pairs per optimiser step of all processes together, so the schedule
is unchanged), DistributedDataParallel averages the gradients, and process 0 alone validates,
writes checkpoints and logs. BatchNorm statistics are synchronised across GPUs, as in the
official 8-GPU run. Without torchrun nothing here is used.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from edm_ros.errors import ConfigError


@dataclass(frozen=True)
class ProcessGroup:
    """This process's place in a torchrun job."""

    rank: int  # 0 .. world_size - 1 over all machines
    local_rank: int  # the device index on this machine
    world_size: int

    @property
    def is_main(self) -> bool:
        """The process that validates, saves and logs."""
        return self.rank == 0

    def device(self, configured: str) -> str:
        """This process's device: its own GPU when the run is on CUDA."""
        return f"cuda:{self.local_rank}" if configured.startswith("cuda") else configured

    def share_of(self, batch_size: int) -> int:
        """Pairs per step of this process.

        Raises:
            ConfigError: the batch does not split evenly over the processes.
        """
        if batch_size % self.world_size:
            raise ConfigError(
                f"batch_size {batch_size} does not split over {self.world_size} processes; "
                "use a multiple of the process count"
            )
        return batch_size // self.world_size

    def any(self, flag: bool, device: torch.device) -> bool:
        """True on every process when ``flag`` is True on any (e.g. a deadline that passed)."""
        value = torch.tensor([float(flag)], device=device)
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return bool(value.item() > 0)

    def barrier(self) -> None:
        """Wait until every process arrives (e.g. while process 0 writes a checkpoint)."""
        dist.barrier()


def join_process_group(device: str) -> ProcessGroup | None:
    """Join the torchrun job this process belongs to; None when it was not started by torchrun.

    Args:
        device: the configured device; CUDA runs communicate with NCCL, CPU runs with Gloo.
    """
    if "WORLD_SIZE" not in os.environ:
        return None
    group = ProcessGroup(
        rank=int(os.environ["RANK"]),
        local_rank=int(os.environ.get("LOCAL_RANK", 0)),
        world_size=int(os.environ["WORLD_SIZE"]),
    )
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    if device.startswith("cuda"):
        torch.cuda.set_device(group.local_rank)
    return group


def leave_process_group() -> None:
    """Close the job's communication (at the end of training)."""
    if dist.is_initialized():
        dist.destroy_process_group()
