"""torchrun's code path in one process: DistributedDataParallel trains exactly as plain training."""

from __future__ import annotations

import socket

import pytest
import torch

from edm_ros.errors import ConfigError
from edm_ros.training.distributed import ProcessGroup, leave_process_group
from edm_ros.training.loop import Trainer
from test.training.test_loop import tiny_config


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_one_process_torchrun_job_trains_like_a_plain_run(tmp_path, monkeypatch):
    plain = Trainer(tiny_config(tmp_path / "plain", epochs=1))
    plain.fit()
    torchrun_environment = {
        "RANK": "0",
        "LOCAL_RANK": "0",
        "WORLD_SIZE": "1",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(_free_port()),
    }
    for name, value in torchrun_environment.items():
        monkeypatch.setenv(name, value)
    try:
        job = Trainer(tiny_config(tmp_path / "job", epochs=1))
        assert job.group == ProcessGroup(rank=0, local_rank=0, world_size=1)
        assert isinstance(job.step_module, torch.nn.parallel.DistributedDataParallel)
        job.fit()
    finally:
        leave_process_group()
    assert job.state.global_step == plain.state.global_step == 2
    assert (tmp_path / "job" / "last.ckpt").is_file()
    for name, value in plain.model.state_dict().items():
        assert torch.allclose(value.float(), job.model.state_dict()[name].float()), name


def test_the_batch_must_split_over_the_processes():
    group = ProcessGroup(rank=1, local_rank=1, world_size=4)
    assert group.share_of(8) == 2 and group.device("cuda") == "cuda:1"
    assert not group.is_main and group.device("cpu") == "cpu"
    with pytest.raises(ConfigError, match="does not split over 4 processes"):
        group.share_of(6)
