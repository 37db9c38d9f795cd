"""The torch backend: CPU path unchanged; CUDA path (pinned uploads, CUDA graph) where a GPU is."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edm_ros.backends.pytorch import CudaTransfer, TorchBackend, distinct_images
from edm_ros.errors import BackendError
from test.backends.conftest import fixture_pairs
from test.conftest import load_parity_fixture

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU here")


@pytest.mark.parametrize("batch", [1, 2])
def test_cpu_backend_returns_the_model_candidates_per_pair(parity_model, batch):
    fixture = load_parity_fixture("320x256")
    pairs = np.repeat(fixture_pairs(fixture), batch, axis=0)
    candidates = TorchBackend(parity_model, "cpu", cuda_graph=True).run(pairs)
    assert candidates.points0.shape == (batch, 448, 2) and candidates.confidence.dtype == np.float32
    for index in range(batch):
        np.testing.assert_array_equal(candidates.pair(index).points0, fixture["mkpts0_c"].numpy())


def test_cuda_request_without_a_gpu_is_a_clear_error(parity_model):
    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    with pytest.raises(BackendError, match="sees no CUDA GPU; use device 'cpu'"):
        TorchBackend(parity_model, "cuda")


@needs_cuda
@pytest.mark.parametrize("cuda_graph", [False, True])
def test_cuda_backend_matches_the_cpu_reference(parity_model, cuda_graph):
    fixture = load_parity_fixture("320x256")
    pairs = np.repeat(fixture_pairs(fixture), 2, axis=0)
    reference = TorchBackend(parity_model, "cpu").run(pairs)
    backend = TorchBackend(parity_model, "cuda", cuda_graph=cuda_graph)
    for _ in range(2):  # the second run replays the captured graph
        candidates = backend.run(pairs)
        np.testing.assert_allclose(candidates.confidence, reference.confidence, atol=1e-4)
    other_shape = backend.run(pairs[:1])  # a shape that was not captured runs eagerly
    np.testing.assert_allclose(other_shape.confidence[0], reference.confidence[0], atol=1e-4)
    parity_model.to("cpu")


@needs_cuda
def test_cuda_transfer_round_trip_keeps_values_and_shapes():
    transfer = CudaTransfer(torch.device("cuda"))
    array = np.random.default_rng(0).random((2, 2, 8, 8), dtype=np.float32)
    on_gpu = transfer.upload(array)
    fields = [on_gpu[:, 0], on_gpu.sum(dim=(2, 3)), on_gpu.amax(dim=(1, 2, 3))]
    host = transfer.download(fields)
    np.testing.assert_array_equal(host[0], array[:, 0])
    np.testing.assert_allclose(host[1], array.sum(axis=(2, 3)), rtol=1e-5)
    assert [h.shape for h in host] == [(2, 8, 8), (2, 2), (2,)]


def test_distinct_images_sends_a_shared_image_through_once():
    rng = np.random.default_rng(0)
    previous, left, right = (rng.random((32, 32), dtype=np.float32) for _ in range(3))
    pairs = np.stack([np.stack([left, right]), np.stack([previous, left])])
    images, index = distinct_images(pairs)
    assert images.shape == (3, 1, 32, 32)
    np.testing.assert_array_equal(index, [[0, 1], [2, 0]])
    np.testing.assert_array_equal(images[index[1, 0], 0], previous)
