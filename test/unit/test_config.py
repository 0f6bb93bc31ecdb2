"""The node's parameter table: validation, and the shipped YAML equal to the code defaults."""

from __future__ import annotations

import pathlib

import pytest
import yaml

from lw_refinenet_ros.config import PARAMETERS, NodeConfig
from lw_refinenet_ros.errors import ConfigError

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_shipped_yaml_equals_the_code_defaults() -> None:
    document = yaml.safe_load((ROOT / 'config' / 'lw_refinenet.yaml').read_text())
    values = document['/**/lw_refinenet']['ros__parameters']
    assert set(values) == {spec.name for spec in PARAMETERS}
    for spec in PARAMETERS:
        shipped = values[spec.name]
        default = list(spec.default) if isinstance(spec.default, tuple) else spec.default
        assert shipped == default, spec.name
        assert type(shipped) is type(default), f'{spec.name}: YAML type differs from the code'
    assert NodeConfig.from_mapping(values) == NodeConfig.defaults()


def test_every_parameter_has_a_description() -> None:
    for spec in PARAMETERS:
        assert len(spec.description) > 15, spec.name


@pytest.mark.parametrize('name,value,match', [
    ('overlay_alpha', 1.5, r'\[0.0, 1.0\]'),
    ('qos', 'sometimes', 'best_effort'),
    ('device', 'tpu', 'cuda:N'),
    ('model.arch', 'resnet18', 'mbv2'),
    ('max_frame_age_ms', 'soon', 'number'),
    ('cameras', ['a', 'a'], 'distinct'),
    ('no_such_parameter', 1, 'Unknown parameter'),
])
def test_invalid_values_are_refused_with_the_reason(name, value, match) -> None:
    with pytest.raises(ConfigError, match=match):
        NodeConfig.from_mapping({name: value})


def test_replace_validates_and_keeps_other_values() -> None:
    config = NodeConfig.defaults().replace({'overlay_alpha': 0.2, 'class_filter': ['bolt']})
    assert config.overlay_alpha == 0.2 and config.class_filter == ('bolt',)
    assert config.scheduler.max_frame_age_ms == NodeConfig.defaults().max_frame_age_ms
    with pytest.raises(ConfigError):
        config.replace({'max_rate_hz': -1.0})
