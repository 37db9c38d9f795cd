"""Worker of ``edm-bench``: the official EDM implementation on saved inputs, timed per stage.

Run as a script by the official implementation's own Python (never imported by edm_ros, and it
imports nothing of edm_ros):

    .official-venv/bin/python scripts/bench_official.py --reference DIR --inputs X.npz \
        --weights W.ckpt --runs 3 --threads 2

``DIR`` is the official code (``src/``, ``configs/``). Prints one JSON line: run times, median
stage times, peak RSS and the final matches (network-input pixels), for ``edm_ros.cli.bench``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import time

import numpy as np
import torch

#: The official modules timed by hooks, in forward order; "coarse" also holds the selection.
OFFICIAL_STAGES = {
    "backbone": "backbone",
    "cim": "neck",
    "coarse": "coarse_matching",
    "fine": "fine_matching",
}


def build_official_model(reference: str, weights: str, height: int, width: int, topk_ratio: float):
    """The official EDM for one input size (indoor test config, threshold 0.2, no border)."""
    sys.path.insert(0, reference)
    os.chdir(reference)  # the official configs are loaded by relative path
    from src.config.default import get_cfg_defaults
    from src.edm.edm import EDM
    from src.utils.misc import lower_config

    cfg = get_cfg_defaults()
    cfg.merge_from_file("configs/edm/indoor/edm_base.py")
    cfg.merge_from_file("configs/data/scannet_test_1500.py")
    cfg.EDM.COARSE.MCONF_THR = 0.2
    cfg.EDM.COARSE.BORDER_RM = 0
    cfg.EDM.TEST_RES_H, cfg.EDM.TEST_RES_W = height, width
    cfg.EDM.NECK.NPE = [cfg.EDM.TRAIN_RES_H, cfg.EDM.TRAIN_RES_W, height, width]
    cfg.EDM.COARSE.TOPK = int(height / 8 * width / 8 * topk_ratio)
    model = EDM(config=lower_config(cfg)["edm"]).eval()
    state = torch.load(weights, map_location="cpu", weights_only=True)
    state = state.get("state_dict", state)
    prefix = "matcher."
    state = {k[len(prefix) :] if k.startswith(prefix) else k: v for k, v in state.items()}
    result = model.load_state_dict(state, strict=False)  # the RealNVP flow is training-only
    assert not result.missing_keys, result.missing_keys
    return model


def stage_hooks(model: torch.nn.Module, marks: dict[str, float]) -> None:
    """Record the wall-clock time at the start and the end of every timed module."""
    for stage, name in OFFICIAL_STAGES.items():
        module = getattr(model, name)

        def mark(key: str):
            return lambda *_: marks.__setitem__(key, time.perf_counter())

        module.register_forward_pre_hook(mark(f"{stage}_start"))
        module.register_forward_hook(mark(f"{stage}_end"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", required=True, help="the official code's folder")
    parser.add_argument("--inputs", required=True, help=".npz with image0, image1 [H, W] float32")
    parser.add_argument("--weights", required=True)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--topk-ratio", type=float, default=0.35)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    inputs = np.load(args.inputs)
    image0, image1 = (torch.from_numpy(inputs[k])[None, None] for k in ("image0", "image1"))
    height, width = image0.shape[-2:]
    model = build_official_model(args.reference, args.weights, height, width, args.topk_ratio)
    marks: dict[str, float] = {}
    stage_hooks(model, marks)
    times_ms, stages = [], []
    for run in range(args.runs + 1):  # the first run warms up
        batch = {"image0": image0, "image1": image1}
        start = time.perf_counter()
        with torch.no_grad():
            model(batch)
        end = time.perf_counter()
        if run:
            times_ms.append((end - start) * 1e3)
            stages.append(
                {
                    "backbone": marks["backbone_end"] - marks["backbone_start"],
                    "cim": marks["cim_end"] - marks["cim_start"],
                    "coarse": marks["fine_start"] - marks["cim_end"],
                    "fine": end - marks["fine_start"],
                }
            )
    report = {
        "times_ms": times_ms,
        "stages_ms": {k: statistics.median(s[k] for s in stages) * 1e3 for k in stages[0]},
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "keypoints0": batch["mkpts0_f"].tolist(),
        "keypoints1": batch["mkpts1_f"].tolist(),
        "confidence": batch["mconf"].tolist(),
        "torch": torch.__version__,
    }
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
