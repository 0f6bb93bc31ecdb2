"""Every command that runs a model takes the engine options as the same flags (one table)."""

from __future__ import annotations

import argparse

import pytest

from lw_refinenet_ros.cli import build_parser, demo
from lw_refinenet_ros.engine.config import ENGINE_PARAMETERS
from lw_refinenet_ros.errors import ConfigError
from lw_refinenet_ros.options import values_from_args


def _subparser(name: str) -> argparse.ArgumentParser:
    parser = build_parser()
    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return actions[0].choices[name]


@pytest.mark.parametrize('command', ['segment', 'eval', 'demo', 'bench'])
def test_commands_offer_every_engine_flag(command: str) -> None:
    options = {s for a in _subparser(command)._actions for s in a.option_strings}
    for spec in ENGINE_PARAMETERS:
        # segment and eval warm up on their first image, at its size; bench at each --size.
        if spec.name != 'warmup_size' or command == 'demo':
            assert spec.flag in options, (command, spec.flag)
    assert '--threads' in options  # the older spelling of --num-threads still works


@pytest.mark.parametrize('command', ['segment', 'eval', 'demo', 'bench'])
def test_help_renders_with_the_engine_flags(command: str, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        _subparser(command).parse_args(['--help'])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert '--agreement-min' in out and '99.5 %' in out


def test_demo_passes_engine_flags_to_the_node_as_typed_parameters() -> None:
    parser = argparse.ArgumentParser()
    demo.add_arguments(parser)
    args = parser.parse_args(['--backend', 'openvino', '--precision', 'bf16', '--agreement-min',
                              '1', '--backend-fallback', '--max-side', '320', '--cache-dir',
                              '/tmp/c', '--device', 'cpu'])
    values = values_from_args(args, ENGINE_PARAMETERS)
    assert values.pop('device') == 'cpu'
    assert demo._node_parameters(values) == (
        'backend:=openvino', 'precision:=bf16', 'agreement_min:=1.0',
        'backend_fallback:=true', 'cache_dir:=/tmp/c', 'max_side:=320')
    with pytest.raises(ConfigError, match='--agreement-min'):
        values_from_args(parser.parse_args(['--agreement-min', '2']), ENGINE_PARAMETERS)


def test_bench_takes_engine_options_from_the_spine_and_sweeps_lists() -> None:
    from lw_refinenet_ros.cli import bench

    args = _subparser('bench').parse_args([
        '--device', 'cpu', 'cuda:1', '--precision', 'fp32', 'bf16', '--size', '24x40', '48x64',
        '--threads', '2', '--max-side', '320', '--cache-dir', '/tmp/c', '--no-fold-bn'])
    base = bench.base_config(args)
    assert (base.num_threads, base.max_side, base.cache_dir, base.fold_batchnorm) == \
        (2, 320, '/tmp/c', False)
    assert (base.device, base.precision) == ('auto', 'auto')  # set per swept configuration
    assert bench.swept_values(args.devices, 'device', '--device') == ['cpu', 'cuda:1']
    assert bench.swept_values(args.precisions, 'precision', '--precision') == ['fp32', 'bf16']
    # WIDTHxHEIGHT on the command line, the engine's (height, width) inside
    assert bench.swept_values(args.sizes, 'warmup_size', '--size') == [(40, 24), (64, 48)]


@pytest.mark.parametrize('flag, value', [('--device', 'gpu'), ('--precision', 'fp8'),
                                          ('--size', '24by40'), ('--max-side', '-1')])
def test_bench_rejects_a_bad_value_naming_the_flag(flag: str, value: str) -> None:
    from lw_refinenet_ros.cli import bench

    args = _subparser('bench').parse_args([flag, value])
    with pytest.raises(ConfigError, match=flag):
        bench.run(args)


def test_quantize_takes_its_engine_options_from_the_spine() -> None:
    from lw_refinenet_ros.cli import quantize

    parser = _subparser('quantize')
    options = {s for a in parser._actions for s in a.option_strings}
    assert {'--cache-dir', '--num-threads', '--threads'} <= options
    assert '--backend' not in options and '--precision' not in options  # fixed: int8 vs fp32
    args = parser.parse_args(['--calibration', 'calib', '--threads', '2', '--cache-dir', 'c'])
    assert quantize.engine_config_from_args(args).num_threads == 2
    with pytest.raises(ConfigError, match='--num-threads'):
        quantize.engine_config_from_args(parser.parse_args(['--calibration', 'c',
                                                            '--threads', '-5']))


@pytest.mark.parametrize('text', ['48by64', '0x64', '48x', '-4x4'])
def test_size_flags_give_a_usage_error_naming_the_format(text: str) -> None:
    from lw_refinenet_ros.sizes import size_argument

    assert size_argument('48X64') == (48, 64)
    with pytest.raises(argparse.ArgumentTypeError, match='WIDTHxHEIGHT'):
        size_argument(text)
