"""Training EDM with the paper's recipe (docs/training.md); plain PyTorch, no trainer framework.

``supervision`` (ground truth, GT padding), ``losses`` (focal, RLE with the RealNVP flow),
``schedule`` (learning rate), ``data`` and ``loftr_data`` (batches, homography and
MegaDepth/ScanNet sets), ``step`` (one training forward), ``loop`` (:class:`~.loop.Trainer`),
``validation``, ``checkpointing``, ``config``, ``plots``. Entry point: ``edm-train``.
"""
