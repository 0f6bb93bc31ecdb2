"""The conveyor demo (``lw-refinenet demo``): camera -> segmentation node -> sorting robot.

Not part of the node: it starts the node as a child process and watches it from outside.

- :mod:`.supervisor`: child processes (start, stop in order, log tails); no ROS, shared with
  ``benchmarks/``.
- :mod:`.recorder`: raw topics to MCAP (Foxglove opens it).
- :mod:`.scoring`: pairs labels with ground truth by stamp, confusion matrix, summary numbers;
  no ROS.
- :mod:`.monitor`: the in-process ROS node that records and scores.
- :mod:`.object_scoring`: the node's objects against part ground truth, paired by stamp
  (one-to-one, pickable parts); no ROS.
- :mod:`.video`, :mod:`.plot`: the run's MP4 and its latency/drop plot; :mod:`.encoder`: the
  nice-19 thread that draws and encodes the video (no ROS).
- :mod:`.live_view`: ``--foxglove``, the live view as one more child process.
- :mod:`.int8_check`: the packaged model's conveyor int8, built once and checked against fp32
  in a child process before the node starts (no ROS); :mod:`.cpu_usage`: each process's CPU
  seconds over the run (no ROS).
- :mod:`.runner`: :class:`~.runner.DemoConfig` and :func:`~.runner.run_demo`, the whole run.

The package imports nothing itself, so ``supervisor`` and ``scoring`` load without ROS.
"""
