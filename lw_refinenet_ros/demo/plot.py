"""The demo's run plot: latency and processed/dropped frames over time, as one PNG.

The summary gives percentiles; the plot shows when things happened (a warm-up spike, a stall
while another process loaded the CPU, a steady drop rate when the camera outpaces the node).
No ROS here: it draws a :class:`~lw_refinenet_ros.demo.video.Timeline`-shaped record.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use('Agg')  # files only: no display on robots and CI machines
import matplotlib.pyplot as plt  # noqa: E402


def save_run_plot(path: Path, latency: Sequence[tuple[float, float, float]],
                  counters: Sequence[tuple[float, int, int]], title: str = '') -> Path:
    """Write the two-panel plot to ``path`` (PNG) and return it.

    Args:
        path: Output file.
        latency: (seconds, processing latency ms, frame age ms) per segmented frame.
        counters: (seconds, processed, dropped) from the node's diagnostics (cumulative).
        title: Figure title (e.g. device, size and rate of the run).
    """
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(9, 6), sharex=True,
                                         constrained_layout=True)
    if latency:
        t, processing, age = zip(*latency)
        top.plot(t, age, '.', markersize=3, label='frame age (camera stamp -> published)')
        top.plot(t, processing, '.', markersize=3, label='in the node (arrival -> published)')
        top.legend(loc='upper right', fontsize=8)
    else:
        top.text(0.5, 0.5, 'no segmented frames', ha='center', transform=top.transAxes)
    top.set_ylabel('latency (ms)')
    top.set_ylim(bottom=0)
    top.grid(alpha=0.3)
    if counters:
        t, processed, dropped = zip(*counters)
        bottom.step(t, processed, where='post', label='processed')
        bottom.step(t, dropped, where='post', label='dropped (a newer frame replaced it, or '
                                                   'too old)')
        bottom.legend(loc='upper left', fontsize=8)
    else:
        bottom.text(0.5, 0.5, 'no diagnostics received', ha='center',
                    transform=bottom.transAxes)
    bottom.set_ylabel('frames (cumulative)')
    bottom.set_xlabel('time since the first segmented frame (s)')
    bottom.grid(alpha=0.3)
    if title:
        figure.suptitle(title)
    target = Path(path)
    figure.savefig(target, dpi=100)
    plt.close(figure)
    return target
