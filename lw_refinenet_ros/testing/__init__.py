"""Test doubles shared by the test suite and ``benchmarks/`` (installed with the package, so
both import them the same way, and a user can test their own launch files against a node that
needs no model).

- :mod:`.fake_engine`: :class:`~.fake_engine.FakeEngine`, the one stand-in for the inference
  engine (configurable labels, latency of seconds if needed, scripted failures); no ROS.
- :mod:`.fake_node`: the real segmentation node around a fake engine, in process
  (:class:`~.fake_node.NodeHarness`) or as a process (``python -m
  lw_refinenet_ros.testing.fake_node --fake-engine-ms 2000 --ros-args ...``).
- :mod:`.spin`: :func:`~.spin.spin_until`, waiting on an executor with a deadline; no ROS.
"""
