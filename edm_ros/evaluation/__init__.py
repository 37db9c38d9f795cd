"""Evaluation: metrics, runners, classical baselines, latency sweeps and the Markdown report.

``metrics`` (pose AUC, epipolar precision, homography corner error, stereo checks), ``runner``
(a matcher over a dataset), ``baselines`` (SIFT, ORB, ``build_matcher``), ``latency`` and
``report``. Datasets come from :mod:`edm_ros.data.datasets`; the CLI is ``edm-eval``.
"""
