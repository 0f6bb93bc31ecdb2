"""How the engine runs: its options, each declared once, and the validated EngineConfig.

The options a user can set (node parameter, YAML key and CLI flag alike) are the
:data:`ENGINE_PARAMETERS` table; the node's table includes it unchanged, the CLI flags come
from :func:`add_engine_arguments`, and :class:`EngineConfig` validates every one of those
fields with the same :class:`~lw_refinenet_ros.options.ParameterSpec`. So a value that the
ROS descriptor accepts can never fail later with a message naming some other field.

Options only code sets (memory format, CUDA graphs, warm-up size, batching) stay plain fields
with their own checks. No torch here: the node's configuration imports this module.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from pathlib import Path
from typing import Any, Mapping

from lw_refinenet_ros.engine.backends.base import BACKEND_NAMES, PRECISION_NAMES
from lw_refinenet_ros.errors import ConfigError
from lw_refinenet_ros.options import (
    ParameterSpec,
    add_arguments,
    values_from_args,
)
from lw_refinenet_ros.sizes import is_size_text, parse_size_hw

AUTO = 'auto'
UPSAMPLE_MODES: tuple[str, ...] = ('bicubic', 'nearest')
#: ``num_threads`` value that times 1 thread against torch's default at warm-up.
THREADS_AUTO = -1


def is_device_name(value: str) -> bool:
    """Whether ``value`` names a device the engine understands (``auto``, ``cpu``,
    ``cuda``, ``cuda:N``)."""
    return value in (AUTO, 'cpu', 'cuda') or (
        value.startswith('cuda:') and value[5:].isdigit())


def default_cache_dir() -> Path:
    """Where built runtime models are cached when ``cache_dir`` is empty: the user's cache
    folder (``$XDG_CACHE_HOME``, else ``~/.cache``) plus ``lw_refinenet_ros``."""
    base = os.environ.get('XDG_CACHE_HOME') or os.path.join(os.path.expanduser('~'), '.cache')
    return Path(base) / 'lw_refinenet_ros'


ENGINE_PARAMETERS: tuple[ParameterSpec, ...] = (
    ParameterSpec('device', AUTO, 'Inference device: auto (CUDA if available), cpu, cuda, '
                  'cuda:N.', check=is_device_name, constraint='auto, cpu, cuda or cuda:N'),
    ParameterSpec('device_fallback', False,
                  'If true, a requested but unavailable CUDA device falls back to the CPU with '
                  'a warning; if false, start-up stops with an error.'),
    ParameterSpec('backend', AUTO,
                  'Inference runtime: auto (the fastest available, timed on the warm-up '
                  'image), torch (the reference), openvino or onnxruntime.',
                  choices=(AUTO,) + BACKEND_NAMES),
    ParameterSpec('precision', AUTO,
                  'Inference precision: auto (the fastest the device runs natively; bf16/fp16 '
                  'only if at least 99.5 % of the warm-up labels equal fp32), fp32 (reference), '
                  'fp16/bf16, int8 (calibrated on calibration_dir).',
                  choices=(AUTO,) + PRECISION_NAMES),
    ParameterSpec('agreement_min', 0.99,
                  'Share of warm-up labels a non-reference backend or precision must have equal '
                  'to torch fp32, checked once at start-up.', minimum=0.0, maximum=1.0),
    ParameterSpec('backend_fallback', False,
                  'If true, a backend that is missing or below agreement_min is replaced by '
                  'torch fp32 with a warning; if false, start-up stops with the reason.'),
    ParameterSpec('cache_dir', '',
                  'Folder for runtime models built from the weights (reused across runs); '
                  'empty = $XDG_CACHE_HOME or ~/.cache, plus /lw_refinenet_ros.'),
    ParameterSpec('calibration_dir', '',
                  'Folder of your own images used to calibrate int8 (needed for precision '
                  'int8 unless a calibrated model is already cached).'),
    ParameterSpec('max_side', 0,
                  'Run the network with the longer image side scaled to at most this many '
                  'pixels (labels are still at camera resolution); 0 = native resolution.',
                  minimum=0, maximum=8192),
    ParameterSpec('upsample', 'bicubic',
                  'bicubic: reference-exact labels; nearest: cheaper, argmax at stride 4.',
                  choices=UPSAMPLE_MODES),
    ParameterSpec('warmup_size', '640x480',
                  'WIDTHxHEIGHT of the image the engine warms up and chooses its backend on: '
                  "use the camera's size (other sizes work; the first frame of a new size may "
                  'take longer while a runtime builds for it).',
                  check=is_size_text,
                  constraint='WIDTHxHEIGHT with positive integers, e.g. 640x480 (a landscape '
                  'camera size turned portrait, like 480x640, is the old HEIGHTxWIDTH order)'),
    ParameterSpec('num_threads', 0,
                  'CPU threads for inference; 0 = the runtime default, -1 = time 1 thread '
                  'against the default at warm-up and keep the faster.',
                  minimum=THREADS_AUTO, maximum=256, flags=('--threads',)),
)

ENGINE_PARAMETER_SPECS: dict[str, ParameterSpec] = {s.name: s for s in ENGINE_PARAMETERS}


def _check_auto_bool(name: str, value: Any) -> None:
    if not (isinstance(value, bool) or value == AUTO):
        raise ConfigError(f'EngineConfig.{name} must be true, false or "auto", got {value!r}.')


@dataclasses.dataclass(frozen=True)
class EngineConfig:
    """How the engine runs; every field is validated on construction.

    The first block of fields is :data:`ENGINE_PARAMETERS` (see their descriptions; they are
    node parameters and CLI flags with the same names). ``None`` is accepted for
    ``max_side`` and ``num_threads`` and means 0 (native size, runtime default);
    ``warmup_size`` is held as ``(height, width)`` (numpy's order) and also accepts the
    parameter's ``'WIDTHxHEIGHT'`` text.

    Attributes:
        channels_last: torch backend: NHWC memory format (true, false or ``'auto'`` = on;
            3-4x faster MobileNet-v2 convolutions through oneDNN).
        fold_batchnorm: torch backend: fold BatchNorm into the preceding convolutions.
        cudnn_benchmark: Let cuDNN pick the fastest kernels per input shape (CUDA only;
            process-wide torch setting; None leaves it as the process has it).
        allow_tf32: Allow TF32 on Ampere+ GPUs. Off so that GPU labels match CPU fp32 (None
            leaves the process-wide switches alone, as validation during training does).
        cuda_graphs: torch backend on CUDA: replay a captured graph per input shape (true,
            false or ``'auto'`` = off). Falls back to eager with one log line.
        compile: torch backend: ``torch.compile`` the model (true, false, ``'auto'`` = off).
        compile_backend: ``torch.compile`` backend (``'inductor'``; ``'eager'`` for tests).
        warmup_iters: Frames run at construction so that the first real one is not slow;
            0 disables warm-up (and with it automatic selection by timing).
        max_batch: Largest batch ``infer_batch`` sends through one forward pass.
        tile_rows: Output rows the CPU bicubic post-processing handles at a time, so a 4K
            frame never holds all its full-resolution class scores at once (0 = untiled).
        band_postprocess: CPU post-processing takes the argmax at the network's resolution
            and interpolates logits only near label changes when the image is exactly four
            times the logits (same labels; see :mod:`.bands`). False interpolates every pixel.
        remember_selection: Store the automatic backend choice in the cache folder and reuse
            it on the next start with the same CPU, runtime versions, weights, size and
            options, without timing (see :mod:`.decisions`).
    """

    device: str = AUTO
    device_fallback: bool = False
    backend: str = AUTO
    precision: str = AUTO
    agreement_min: float = 0.99
    backend_fallback: bool = False
    cache_dir: str = ''
    calibration_dir: str = ''
    max_side: int = 0
    upsample: str = 'bicubic'
    warmup_size: tuple[int, int] | str = (480, 640)  # (height, width); text: '640x480'
    num_threads: int = 0
    channels_last: bool | str = AUTO
    fold_batchnorm: bool = True
    cudnn_benchmark: bool | None = True
    allow_tf32: bool | None = False
    cuda_graphs: bool | str = False
    compile: bool | str = False
    compile_backend: str = 'inductor'
    warmup_iters: int = 1
    max_batch: int = 8
    tile_rows: int = 256
    band_postprocess: bool = True
    remember_selection: bool = True

    def __post_init__(self) -> None:
        for name in ('max_side', 'num_threads'):
            if getattr(self, name) is None:
                object.__setattr__(self, name, 0)
        if isinstance(self.warmup_size, str):  # the parameter's text form: 'WIDTHxHEIGHT'
            object.__setattr__(self, 'warmup_size',
                               parse_size_hw(self.warmup_size, what='warmup_size'))
        for spec in ENGINE_PARAMETERS:
            if spec.name != 'warmup_size':
                object.__setattr__(self, spec.name, spec.validate(getattr(self, spec.name)))
        for name in ('channels_last', 'cuda_graphs', 'compile'):
            _check_auto_bool(name, getattr(self, name))
        for name in ('fold_batchnorm', 'cudnn_benchmark', 'allow_tf32', 'band_postprocess',
                     'remember_selection'):
            value = getattr(self, name)
            if not isinstance(value, bool) and not (
                    value is None and name in ('cudnn_benchmark', 'allow_tf32')):
                raise ConfigError(f'EngineConfig.{name} must be true or false, got '
                                  f'{value!r}.')
        if not isinstance(self.compile_backend, str) or not self.compile_backend:
            raise ConfigError('EngineConfig.compile_backend must be a backend name such as '
                              '"inductor".')
        for name, minimum in (('warmup_iters', 0), ('max_batch', 1), ('tile_rows', 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ConfigError(f'EngineConfig.{name} must be an integer >= {minimum}, got '
                                  f'{value!r}.')
        size = tuple(self.warmup_size) if isinstance(self.warmup_size, (list, tuple)) else ()
        if len(size) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0
                                     for v in size):
            raise ConfigError(f'EngineConfig.warmup_size must be (height, width) with positive '
                              f'integers, got {self.warmup_size!r}.')
        object.__setattr__(self, 'warmup_size', size)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> EngineConfig:
        """Build from a dict (YAML, ROS parameters); unknown keys are a ConfigError."""
        names = [field.name for field in dataclasses.fields(cls)]
        unknown = sorted(set(values) - set(names))
        if unknown:
            raise ConfigError(f'Unknown engine option(s) {", ".join(unknown)}; known: '
                              f'{", ".join(names)}.')
        return cls(**dict(values))

    def resolved_cache_dir(self) -> Path:
        """``cache_dir``, or :func:`default_cache_dir` when it is empty."""
        return Path(self.cache_dir).expanduser() if self.cache_dir else default_cache_dir()


def add_engine_arguments(parser: argparse.ArgumentParser | Any, *,
                         exclude: tuple[str, ...] = ()) -> None:
    """Add ``--device``, ``--backend``, ``--precision``, ... (one flag per engine option).

    Args:
        parser: An argparse parser or argument group.
        exclude: Option names the command defines differently (e.g. bench's lists).
    """
    unknown = set(exclude) - set(ENGINE_PARAMETER_SPECS)
    if unknown:
        raise ValueError(f'not engine options: {sorted(unknown)}')
    add_arguments(parser, [s for s in ENGINE_PARAMETERS if s.name not in exclude])


def engine_config_from_args(args: argparse.Namespace, **overrides: Any) -> EngineConfig:
    """EngineConfig from the flags of :func:`add_engine_arguments` (unset ones keep their
    defaults) plus code-level ``overrides`` (``warmup_size=...``).

    Raises:
        ConfigError: A flag value is invalid; the message names the flag.
    """
    values = values_from_args(args, ENGINE_PARAMETERS)
    values.update(overrides)
    return EngineConfig.from_mapping(values)
