"""The Foxglove layout for the live view, generated for the cameras being served.

Built with ``foxglove.layouts`` (the SDK's typed layout model) rather than hand-written JSON,
so that the panel settings stay valid for the SDK version the package pins. The shipped
``config/foxglove_layout.json`` is this layout for the demo's namespace; ``lw-refinenet view
--write-layout FILE`` writes the one matching other ``--cameras``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import foxglove.layouts as fl

from lw_refinenet_ros.ros.view.server import DIAGNOSTICS_TOPIC, camera_prefix

#: The namespace ``lw-refinenet demo`` runs in; the shipped layout shows it.
DEMO_NAMESPACE = '/conveyor_demo'


def _image(title: str, topic: str, annotations: str | None = None) -> fl.ImagePanel:
    shown = {annotations: fl.ImageAnnotationSettings(visible=True)} if annotations else None
    return fl.ImagePanel(title=title, config=fl.ImageConfig(
        image_mode=fl.ImageModeConfig(image_topic=topic, annotations=shown)))


def _column(*panels: Any, proportions: Sequence[float] | None = None) -> fl.SplitContainer:
    weights = proportions or [1.0] * len(panels)
    return fl.SplitContainer(direction='column', items=[
        fl.SplitItem(proportion=w, content=p) for p, w in zip(panels, weights)])


def _row(*panels: Any, proportions: Sequence[float] | None = None) -> fl.SplitContainer:
    weights = proportions or [1.0] * len(panels)
    return fl.SplitContainer(direction='row', items=[
        fl.SplitItem(proportion=w, content=p) for p, w in zip(panels, weights)])


def camera_content(namespace: str, image_topic: str = '') -> fl.SplitContainer:
    """Panels of one camera: the overlay large, the annotated camera image and the colour mask
    below it, latency plot and raw stats/class map/diagnostics on the right."""
    prefix = camera_prefix(namespace)
    seg = f'{prefix}segmentation'
    latency = fl.PlotPanel(title='Latency (ms)', config=fl.PlotConfig(
        paths=[fl.PlotSeries(value=f'{seg}/stats.processing_latency_ms',
                             label='in the node'),
               fl.PlotSeries(value=f'{seg}/stats.frame_age_ms', label='frame age')],
        show_legend=True))
    # Annotations go on the camera image only: while objects are computed the node draws the
    # same ids and pick points into its overlay itself.
    images = _column(
        _image('Overlay', f'{seg}/overlay'),
        _row(_image('Camera + objects', image_topic or f'{prefix}image', f'{seg}/annotations'),
             _image('Colour mask', f'{seg}/color')),
        proportions=[2.0, 1.0])
    numbers = _column(
        latency,
        fl.RawMessagesPanel(title='Stats', config=fl.RawMessagesConfig(
            topic_path=f'{seg}/stats')),
        fl.RawMessagesPanel(title='Class map', config=fl.RawMessagesConfig(
            topic_path=f'{seg}/class_map')),
        fl.RawMessagesPanel(title='Diagnostics', config=fl.RawMessagesConfig(
            topic_path=DIAGNOSTICS_TOPIC)))
    return _row(images, numbers, proportions=[2.0, 1.0])


def build_layout(cameras: Sequence[str], image_topic: str = '') -> fl.Layout:
    """One camera: its panels; several: one tab per camera."""
    if len(cameras) == 1:
        return fl.Layout(content=camera_content(cameras[0], image_topic))
    return fl.Layout(content=fl.TabContainer(tabs=[
        fl.TabItem(title=camera_prefix(c).strip('/') or '/', content=camera_content(c))
        for c in cameras]))


def layout_json(cameras: Sequence[str], image_topic: str = '') -> str:
    """The layout as indented JSON (stable, diff-friendly), with a trailing newline."""
    return json.dumps(json.loads(build_layout(cameras, image_topic).to_json()), indent=2) + '\n'


def write_layout(path: str | Path, cameras: Sequence[str], image_topic: str = '') -> Path:
    """Write :func:`layout_json` to ``path`` and return it."""
    target = Path(path)
    target.write_text(layout_json(cameras, image_topic))
    return target
