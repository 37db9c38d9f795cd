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
    images, index, keys = distinct_images(pairs)
    assert images.shape == (3, 1, 32, 32) and len(set(keys)) == 3
    np.testing.assert_array_equal(index, [[0, 1], [2, 0]])
    np.testing.assert_array_equal(images[index[1, 0], 0], previous)


def test_reused_features_skip_the_backbone_for_images_seen_in_the_last_call(parity_model):
    """A stereo stream: frame k = (left_k, right_k) and (left_k-1, left_k); left_k-1 is kept."""
    fixture = load_parity_fixture("320x256")
    left, right = fixture_pairs(fixture)[0]
    lefts = [np.roll(left, 8 * k, axis=1) for k in range(3)]
    rights = [np.roll(right, 8 * k, axis=1) for k in range(3)]
    frames = [
        np.stack([np.stack([lefts[k], rights[k]]), np.stack([lefts[k - 1], lefts[k]])])
        for k in (1, 2)
    ]
    reference = TorchBackend(parity_model, "cpu")
    reusing = TorchBackend(parity_model, "cpu", reuse_features=True)
    backbone_batches: list[int] = []
    reusing.model.backbone.register_forward_hook(
        lambda _module, inputs, _output: backbone_batches.append(inputs[0].shape[0])
    )
    for frame in frames:
        expected, got = reference.run(frame), reusing.run(frame)
        np.testing.assert_array_equal(got.points0, expected.points0)
        np.testing.assert_array_equal(got.points1, expected.points1)
        np.testing.assert_allclose(got.confidence, expected.confidence, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(got.offsets01, expected.offsets01, atol=1e-5)
    assert backbone_batches == [3, 2], "the second frame's previous left image comes from the first"
    reusing.run(frames[0])  # the last call kept left_2, right_2, left_1: right_1, left_0 are new
    assert backbone_batches == [3, 2, 2]
