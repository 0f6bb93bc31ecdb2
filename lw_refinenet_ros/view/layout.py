"""The Foxglove layout for the live view, generated for the cameras being served.

Built with ``foxglove.layouts`` (the SDK's typed layout model) rather than by hand, so that
panel settings use the SDK's field names. The SDK serialises a nested form (``content`` of
splits, tabs and panels) meant for its notebook integration; the app's *Import from file*
reads the form it exports: ``configById`` (panel id -> settings, ``foxglovePanelTitle`` for a
title) plus a binary ``layout`` tree of ``{first, second, direction, splitPercentage}``.
:func:`app_layout` converts one into the other. The shipped ``config/foxglove_layout.json`` is
that for the demo's namespace; ``lw-refinenet view --write-layout FILE`` writes the one
matching other ``--cameras``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import foxglove.layouts as fl

from lw_refinenet_ros.view.server import DIAGNOSTICS_TOPIC, camera_prefix

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
        paths=[fl.PlotSeries(value=f'{seg}/stats.processing_latency_ms', label='in the node',
                             enabled=True, timestamp_method='receiveTime'),
               fl.PlotSeries(value=f'{seg}/stats.frame_age_ms', label='frame age',
                             enabled=True, timestamp_method='receiveTime')],
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


def app_layout(layout: fl.Layout) -> dict[str, Any]:
    """The app's import/export form of ``layout`` (panel ids numbered in tree order)."""
    config_by_id: dict[str, Any] = {}

    def convert(node: dict[str, Any]) -> Any:
        kind = node['type']
        if kind == 'panel':
            panel_id = f'{node["panelType"]}!lwrf{len(config_by_id) + 1}'
            config = dict(node.get('config', {}))
            if node.get('title'):
                config['foxglovePanelTitle'] = node['title']
            config_by_id[panel_id] = config
            return panel_id
        if kind == 'split':
            items = node['items']
            trees = [convert(item['content']) for item in items]
            weights = [float(item.get('proportion', 1.0)) for item in items]
            # react-mosaic trees are binary: the first item against the rest, right-folded.
            tree = trees[-1]
            for index in range(len(trees) - 2, -1, -1):
                share = weights[index] / sum(weights[index:])
                tree = {'first': trees[index], 'second': tree, 'direction': node['direction'],
                        'splitPercentage': round(100.0 * share, 3)}
            return tree
        if kind == 'tabs':
            tab_id = f'Tab!lwrf{len(config_by_id) + 1}'
            config_by_id[tab_id] = {}  # reserve the id before the children take theirs
            config_by_id[tab_id] = {
                'activeTabIdx': node.get('selectedTabIndex', 0),
                'tabs': [{'title': tab['title'], 'layout': convert(tab['content'])}
                         for tab in node['tabs']]}
            return tab_id
        raise ValueError(f'no app form for layout node type {kind!r}')

    tree = convert(json.loads(layout.to_json())['content'])
    return {'configById': config_by_id, 'globalVariables': {}, 'userNodes': {},
            'playbackConfig': {'speed': 1.0}, 'layout': tree}


def layout_json(cameras: Sequence[str], image_topic: str = '') -> str:
    """The app-importable layout as indented JSON (stable, diff-friendly), newline-ended."""
    return json.dumps(app_layout(build_layout(cameras, image_topic)), indent=2) + '\n'


def write_layout(path: str | Path, cameras: Sequence[str], image_topic: str = '') -> Path:
    """Write :func:`layout_json` to ``path`` and return it."""
    target = Path(path)
    target.write_text(layout_json(cameras, image_topic))
    return target
