"""Evaluation: how good a model's labels and objects are, against exact ground truth.

- :mod:`.metrics`: confusion matrix, per-class IoU, mIoU, pixel accuracy (numpy only).
- :mod:`.segmentation`: a model's (or engine's) labels scored over a dataset, through the
  inference engine the node runs.
- :mod:`.robustness`: the fixed brightness/blur/noise suite of ``eval --robustness``.
- :mod:`.object_metrics`: parts found one-to-one against instance ground truth, pickable
  parts, pick points, id switches (numpy/OpenCV only).
- :mod:`.seeds`: the conveyor seeds that choose models and settings (validation) and the
  ones only reported numbers touch (test).

Training validates through :mod:`.segmentation`; nothing here imports ``training/``.
"""
