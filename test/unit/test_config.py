"""The node's parameter table: validation, and the shipped YAML equal to the code defaults."""

from __future__ import annotations

import argparse
import os
import pathlib
import subprocess
import sys

import pytest
import yaml

from lw_refinenet_ros.config import PARAMETER_SPECS, PARAMETERS, NodeConfig
from lw_refinenet_ros.engine.config import (
    ENGINE_PARAMETERS,
    EngineConfig,
    add_engine_arguments,
    default_cache_dir,
    engine_config_from_args,
)
from lw_refinenet_ros.errors import ConfigError
from lw_refinenet_ros.sizes import parse_size_hw

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
    ('device', 'cuda:x', 'cuda:N'),
    ('backend', 'tensorrt', 'onnxruntime'),
    ('precision', 'fp8', 'int8'),
    ('agreement_min', 1.2, r'\[0.0, 1.0\]'),
    ('max_side', -5, 'max_side'),
    ('warmup_size', '640', 'WIDTHxHEIGHT'),
    ('warmup_size', '0x5', 'WIDTHxHEIGHT'),
    ('warmup_size', '480x640', 'old HEIGHTxWIDTH order'),
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


def test_importing_the_configuration_does_not_import_torch() -> None:
    code = ('import sys, lw_refinenet_ros.config, lw_refinenet_ros.engine.config; '
            'print("torch" in sys.modules)')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == 'False'


def test_the_node_table_holds_the_engine_table_unchanged() -> None:
    for spec in ENGINE_PARAMETERS:
        assert PARAMETER_SPECS[spec.name] is spec
    engine = NodeConfig.defaults().replace({'max_side': 320, 'backend': 'torch',
                                            'device': 'cpu', 'num_threads': 1}).engine
    assert isinstance(engine, EngineConfig)
    assert (engine.max_side, engine.backend, engine.device, engine.num_threads) == \
        (320, 'torch', 'cpu', 1)
    assert NodeConfig.defaults().replace({'warmup_size': '320x240'}).engine.warmup_size == \
        (240, 320)  # WIDTHxHEIGHT text, (height, width) field


def _edge_values(spec) -> list:
    """Values the spec accepts at its edges (range ends, every choice)."""
    if spec.choices is not None:
        return list(spec.choices)
    if spec.minimum is not None:
        kind = type(spec.default)
        return [kind(spec.minimum), kind(spec.maximum), spec.default]
    return [spec.default]


@pytest.mark.parametrize('spec', ENGINE_PARAMETERS, ids=lambda s: s.name)
def test_every_value_the_node_accepts_the_engine_accepts(spec) -> None:
    for value in _edge_values(spec):
        config = NodeConfig.defaults().replace({spec.name: value})
        expected = parse_size_hw(value) if spec.name == 'warmup_size' else value
        assert getattr(config.engine, spec.name) == expected
    if spec.minimum is not None:
        below = type(spec.default)(spec.minimum) - 1
        with pytest.raises(ConfigError, match=spec.name):
            NodeConfig.from_mapping({spec.name: below})
        with pytest.raises(ConfigError, match=spec.name):
            EngineConfig(**{spec.name: below})


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_engine_arguments(parser)
    return parser.parse_args(list(argv))


def test_cli_flags_mirror_the_table_with_the_same_validator() -> None:
    assert engine_config_from_args(_parse()) == EngineConfig()
    config = engine_config_from_args(
        _parse('--device', 'cpu', '--backend', 'torch', '--precision', 'bf16', '--max-side',
               '512', '--upsample', 'nearest', '--threads', '2', '--agreement-min', '0.5',
               '--backend-fallback', '--cache-dir', '/tmp/c'), warmup_iters=0)
    assert (config.device, config.backend, config.precision, config.max_side,
            config.upsample, config.num_threads, config.agreement_min,
            config.backend_fallback, config.cache_dir, config.warmup_iters) == \
        ('cpu', 'torch', 'bf16', 512, 'nearest', 2, 0.5, True, '/tmp/c', 0)
    with pytest.raises(ConfigError, match='--max-side must be within'):
        engine_config_from_args(_parse('--max-side', '9000'))
    with pytest.raises(ConfigError, match='--device must be auto, cpu, cuda or cuda:N'):
        engine_config_from_args(_parse('--device', 'gpu'))
    with pytest.raises(SystemExit):
        _parse('--backend', 'tensorflow')


def test_cli_flags_can_leave_out_options_a_command_defines_itself() -> None:
    parser = argparse.ArgumentParser()
    add_engine_arguments(parser, exclude=('device', 'precision'))
    parser.add_argument('--device', nargs='+')
    assert parser.parse_args(['--device', 'cpu', 'cuda']).device == ['cpu', 'cuda']
    with pytest.raises(ValueError, match='not engine options'):
        add_engine_arguments(argparse.ArgumentParser(), exclude=('devise',))


def test_the_default_cache_folder_follows_xdg(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path))
    assert default_cache_dir() == tmp_path / 'lw_refinenet_ros'
    assert EngineConfig().resolved_cache_dir() == tmp_path / 'lw_refinenet_ros'
    monkeypatch.delenv('XDG_CACHE_HOME')
    assert default_cache_dir() == pathlib.Path.home() / '.cache' / 'lw_refinenet_ros'
    assert EngineConfig(cache_dir='~/x').resolved_cache_dir() == pathlib.Path.home() / 'x'


def parameter_table() -> str:
    """The parameter table of docs/node.md, derived from the one table in config.py."""
    rows = ['| Parameter | Default | Runtime | Meaning |', '|---|---|---|---|']
    for spec in PARAMETERS:
        default = list(spec.default) if isinstance(spec.default, tuple) else spec.default
        meaning = spec.description
        if spec.choices:
            meaning += f' ({" / ".join(spec.choices)})'
        elif spec.minimum is not None:
            meaning += f' (range {spec.minimum:g}..{spec.maximum:g})'
        rows.append(f'| `{spec.name}` | `{default!r}` | {"yes" if spec.runtime else "no"} | '
                    f'{meaning} |')
    return '\n'.join(rows) + '\n'


def test_the_node_docs_list_every_parameter_as_the_table_says() -> None:
    """docs/node.md holds the generated table verbatim (the message prints it on failure)."""
    table = parameter_table()
    assert table in (ROOT / 'docs' / 'node.md').read_text(), '\n' + table


def test_generic_flags_from_specs_keep_types_and_name_the_flag_in_errors() -> None:
    from lw_refinenet_ros.options import ParameterSpec, add_arguments, values_from_args

    specs = (ParameterSpec('objects.min_area', 40, 'Smallest object, in pixels here.',
                           minimum=1, maximum=100),
             ParameterSpec('objects.enabled', True, 'Publish the objects of each frame.'),
             ParameterSpec('class_filter', (), 'Classes reported, by name or id.'),
             ParameterSpec('ratio', 0.5, 'A share of something, for the test.', minimum=0.0,
                           maximum=1.0))
    parser = argparse.ArgumentParser()
    add_arguments(parser, specs)
    assert [s.flag for s in specs] == ['--objects-min-area', '--objects-enabled',
                                       '--class-filter', '--ratio']
    args = parser.parse_args(['--objects-min-area', '7', '--no-objects-enabled',
                              '--class-filter', 'bolt', 'nut', '--ratio', '1'])
    assert values_from_args(args, specs) == {'objects.min_area': 7, 'objects.enabled': False,
                                             'class_filter': ('bolt', 'nut'), 'ratio': 1.0}
    assert values_from_args(parser.parse_args([]), specs) == {}
    with pytest.raises(ConfigError, match=r'--objects-min-area must be within \[1, 100\]'):
        values_from_args(parser.parse_args(['--objects-min-area', '0']), specs)


def test_path_options_expand_home_and_variables(monkeypatch) -> None:
    from lw_refinenet_ros.engine.config import ENGINE_PARAMETERS
    from lw_refinenet_ros.objects.options import OBJECT_PARAMETERS
    paths = {spec.name for spec in (*PARAMETERS, *ENGINE_PARAMETERS, *OBJECT_PARAMETERS)
             if spec.is_path}
    assert paths == {'model.weights', 'model.classes_file', 'cache_dir', 'calibration_dir',
                     'uncertain.save_dir'}
    monkeypatch.setenv('LWRF_TEST_DATA', '/data/lwrf')
    config = NodeConfig.from_mapping({'model.weights': '~/.torch/mbv2.pt',
                                      'calibration_dir': '$LWRF_TEST_DATA/calib'})
    assert config.model_weights == os.path.expanduser('~/.torch/mbv2.pt')
    assert not config.model_weights.startswith('~')
    assert config.engine.calibration_dir == '/data/lwrf/calib'
    assert NodeConfig.defaults().model_weights == ''  # empty stays empty


def test_unknown_names_are_refused_with_the_closest_known_one() -> None:
    with pytest.raises(ConfigError, match=r'overlay_alpa \(did you mean overlay_alpha\?\)'):
        NodeConfig.from_mapping({'overlay_alpa': 0.3})


def test_each_option_has_exactly_one_default() -> None:
    """One table entry per option, and every settings class built from the tables (or
    holding an option under its field name) has that entry's default, not its own."""
    import dataclasses
    import importlib

    from lw_refinenet_ros.engine.config import ENGINE_PARAMETERS, EngineConfig
    from lw_refinenet_ros.objects.options import (
        OBJECT_PARAMETERS,
        DetectorSettings,
        ObjectsConfig,
    )
    names = [spec.name for spec in PARAMETERS]
    assert len(names) == len(set(names)), 'an option is declared twice'
    assert set(ENGINE_PARAMETERS) <= set(PARAMETERS) and set(OBJECT_PARAMETERS) <= set(
        PARAMETERS)
    # The generated classes: one field per option, nothing hand-written beside the table.
    node_fields = [f.name for f in dataclasses.fields(NodeConfig)]
    assert node_fields == [s.field for s in PARAMETERS if s not in OBJECT_PARAMETERS] + [
        'objects']
    assert [f.name for f in dataclasses.fields(ObjectsConfig)] == [
        s.name[len('objects.'):].replace('.', '_') for s in OBJECT_PARAMETERS]
    assert EngineConfig() == EngineConfig.from_mapping({})
    # Any objects dataclass field named like an option defaults to the option's default
    # (EngineConfig's own defaults are its table's: the equality above).
    by_field = {s.name[len('objects.'):].replace('.', '_'): s for s in OBJECT_PARAMETERS}
    wrong = []
    for module_name in ('lw_refinenet_ros.objects.detect', 'lw_refinenet_ros.objects.options',
                        'lw_refinenet_ros.objects.processor', 'lw_refinenet_ros.objects.tracking',
                        'lw_refinenet_ros.objects.belt'):
        module = importlib.import_module(module_name)
        for cls in vars(module).values():
            if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
                continue
            for f in dataclasses.fields(cls):
                spec = by_field.get(f.name)
                if spec is None or f.default is dataclasses.MISSING:
                    continue
                if spec.validate(spec.default) != f.default:
                    wrong.append(f'{cls.__name__}.{f.name} = {f.default!r} but {spec.name} '
                                 f'defaults to {spec.default!r}')
    assert not wrong, wrong
    assert DetectorSettings().min_score == 0.75 and DetectorSettings().min_area == 160
