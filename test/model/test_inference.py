"""The network prepared for inference computes what the model file computes."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from edm_ros.model.edm import EDM
from edm_ros.model.inference import fold_batch_norms, prepare_for_inference


@pytest.fixture(scope="module")
def model() -> EDM:
    torch.manual_seed(0)
    edm = EDM().eval()
    for module in edm.modules():  # running statistics that make folding change something
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    return edm


def test_prepared_copy_has_no_batch_norm_and_leaves_the_original_alone(model):
    before = {name: value.clone() for name, value in model.state_dict().items()}
    prepared = prepare_for_inference(model, torch.device("cpu"))
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in prepared.modules())
    assert prepared.backbone.layer1[0].conv1.weight.is_contiguous(memory_format=torch.channels_last)
    assert prepared.neck.dwconv8[0].c.weight.is_contiguous(memory_format=torch.channels_last)
    after = model.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[name], after[name]) for name in before)


@pytest.mark.parametrize("batch", [1, 2])
def test_prepared_model_gives_the_same_candidates(model, batch):
    torch.manual_seed(batch)
    image0, image1 = torch.rand(batch, 1, 64, 96), torch.rand(batch, 1, 64, 96)
    prepared = prepare_for_inference(model, torch.device("cpu"))
    with torch.inference_mode():
        reference = model(image0, image1)
        first, second = prepared(image0, image1), prepared(image0, image1)
    for mine, theirs, again in zip(first, reference, second):
        torch.testing.assert_close(mine, theirs, atol=1e-4, rtol=1e-4)
        assert torch.equal(mine, again), "a reused buffer leaves no trace in the next call"


def test_workspace_keeps_one_similarity_buffer_across_calls(model):
    prepared = prepare_for_inference(model, torch.device("cpu"))
    images = torch.rand(1, 1, 64, 64), torch.rand(1, 1, 64, 64)
    with torch.inference_mode():
        prepared(*images)
        assert prepared.workspace is not None
        buffer = prepared.workspace.buffer("similarity", (1, 64, 64), images[0])
        prepared(*images)
        again = prepared.workspace.buffer("similarity", (1, 64, 64), images[0])
    assert buffer.data_ptr() == again.data_ptr()


def test_folding_a_sequential_conv_and_batch_norm_keeps_its_output():
    torch.manual_seed(4)
    block = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8)).eval()
    block[1].running_mean.uniform_(-1, 1)
    block[1].running_var.uniform_(0.5, 2.0)
    x = torch.rand(2, 3, 16, 16)
    expected = block(x)
    fold_batch_norms(block)
    assert isinstance(block[1], nn.Identity)
    torch.testing.assert_close(block(x), expected, atol=1e-5, rtol=1e-5)
