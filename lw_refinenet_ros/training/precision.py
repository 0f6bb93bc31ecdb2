"""Which arithmetic a training step runs in, and the step itself.

Mixed precision halves the memory traffic of a step, which is where MobileNet-v2's depthwise
convolutions spend their time, but only where the hardware computes in 16 bits natively:

- CUDA: bf16 autocast where the GPU has bf16 (Ampere and later; no loss scaling needed),
  else fp16 autocast with a GradScaler (fp16's narrow range underflows small gradients).
- CPU: bf16 autocast only where the CPU has bf16 instructions (``avx512_bf16`` or
  ``amx_bf16`` in /proc/cpuinfo: Cooper Lake, Sapphire Rapids and later, Zen 4 and later);
  elsewhere bf16 is emulated, slower than fp32, so the step stays fp32.

``--amp`` picks: ``auto`` (the above), ``off`` (fp32), ``bf16`` or ``fp16`` (CUDA only).
``--compile`` wraps the network in ``torch.compile`` for the step (``auto``: on CUDA only,
where the compiled kernels pay back their compile time within a training run; a compile
failure falls back to the eager network with one warning).

This module imports only torch (the GPU benchmark ``benchmarks/gpu_train.py`` uses it on a
machine without the training extras).
"""

from __future__ import annotations

from dataclasses import dataclass
import logging
from pathlib import Path
from typing import Any, Callable, Iterable

import torch
from torch import nn

_LOG = logging.getLogger(__name__)

AMP_CHOICES = ('auto', 'off', 'bf16', 'fp16')
COMPILE_CHOICES = ('auto', 'on', 'off')
#: CPU flags (as /proc/cpuinfo spells them) of native bf16 arithmetic.
NATIVE_BF16_FLAGS = frozenset({'avx512_bf16', 'amx_bf16'})


@dataclass(frozen=True)
class StepPrecision:
    """The autocast of a training step.

    Attributes:
        dtype: The autocast dtype, or None for plain fp32.
        scaled: Whether the loss is scaled (GradScaler; fp16 only).
        reason: Why, in words (logged at the start of training).
    """

    dtype: torch.dtype | None
    scaled: bool
    reason: str

    @property
    def name(self) -> str:
        return {None: 'fp32', torch.bfloat16: 'bf16', torch.float16: 'fp16'}[self.dtype]


def cpu_flags(path: str | Path = '/proc/cpuinfo') -> frozenset[str]:
    """The CPU's feature flags (empty when the file cannot be read: not Linux)."""
    try:
        text = Path(path).read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith('flags') and ':' in line:
            return frozenset(line.split(':', 1)[1].split())
    return frozenset()


def normalize_amp(value: Any) -> str:
    """``--amp`` as one of :data:`AMP_CHOICES` (true/false from older configs: auto/off)."""
    if isinstance(value, bool):
        return 'auto' if value else 'off'
    text = str(value).lower()
    aliases = {'true': 'auto', 'on': 'auto', 'yes': 'auto', '1': 'auto', 'false': 'off',
               'no': 'off', '0': 'off', 'fp32': 'off'}
    text = aliases.get(text, text)
    if text not in AMP_CHOICES:
        raise ValueError(f'amp must be one of {", ".join(AMP_CHOICES)} (or true/false), '
                         f'got {value!r}')
    return text


def choose_precision(amp: Any, device_type: str, *,
                     flags: Iterable[str] | None = None,
                     cuda_bf16: bool | None = None) -> StepPrecision:
    """The autocast for ``amp`` on ``device_type`` ('cpu' or 'cuda').

    Args:
        amp: A value of ``--amp`` (see :func:`normalize_amp`).
        device_type: Where the step runs.
        flags: The CPU's flags (default: :func:`cpu_flags`); injected by tests.
        cuda_bf16: Whether the GPU has bf16 (default: ``torch.cuda.is_bf16_supported()``).

    Raises:
        ValueError: an unknown ``amp``, or fp16 on a CPU.
    """
    mode = normalize_amp(amp)
    if mode == 'off':
        return StepPrecision(None, False, 'fp32 (--amp off)')
    if device_type == 'cuda':
        if mode == 'auto':
            if cuda_bf16 is None:
                cuda_bf16 = bool(torch.cuda.is_bf16_supported())
            mode = 'bf16' if cuda_bf16 else 'fp16'
            why = 'the GPU has bf16' if cuda_bf16 else 'the GPU has no bf16'
        else:
            why = f'--amp {mode}'
        if mode == 'fp16':
            return StepPrecision(torch.float16, True, f'fp16 autocast + loss scaling ({why})')
        return StepPrecision(torch.bfloat16, False, f'bf16 autocast ({why})')
    if mode == 'fp16':
        raise ValueError('--amp fp16 is for CUDA; on a CPU use bf16 (fast only where the CPU '
                         'has avx512_bf16/amx_bf16) or auto')
    native = NATIVE_BF16_FLAGS & frozenset(cpu_flags() if flags is None else flags)
    if mode == 'bf16':
        return StepPrecision(torch.bfloat16, False, 'bf16 autocast (--amp bf16' + (
            ')' if native else '; this CPU emulates bf16, expect slower steps than fp32)'))
    if native:
        return StepPrecision(torch.bfloat16, False,
                             f'bf16 autocast (the CPU has {", ".join(sorted(native))})')
    return StepPrecision(None, False, 'fp32 (the CPU has no native bf16: no avx512_bf16 or '
                                      'amx_bf16)')


def use_compile(choice: str, device_type: str) -> bool:
    """Whether ``--compile`` means compiling here (``auto``: on CUDA only)."""
    if choice not in COMPILE_CHOICES:
        raise ValueError(f'compile must be one of {", ".join(COMPILE_CHOICES)}, got {choice!r}')
    return choice == 'on' or (choice == 'auto' and device_type == 'cuda')


class CompiledForward:
    """``net``'s forward through ``torch.compile``, back to eager (once, with a warning) if
    compiling fails, so a missing compiler toolchain never stops a training run."""

    def __init__(self, net: nn.Module) -> None:
        self.eager = net
        self._compiled: Callable[..., Any] | None = torch.compile(net)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        if self._compiled is not None:
            try:
                return self._compiled(images)
            except Exception as error:  # noqa: BLE001 - inductor raises many types
                _LOG.warning('torch.compile failed (%s: %s); training with the eager '
                             'network', type(error).__name__, str(error).splitlines()[0][:200])
                self._compiled = None
        return self.eager(images)


def forward_for(net: nn.Module, compile_choice: str, device_type: str) -> Callable[..., Any]:
    """The forward a training step calls: ``net`` or its :class:`CompiledForward`."""
    return CompiledForward(net) if use_compile(compile_choice, device_type) else net


def make_scaler(precision: StepPrecision, device_type: str) -> torch.amp.GradScaler:
    """A GradScaler that scales only for fp16 (a disabled one passes everything through)."""
    return torch.amp.GradScaler('cuda' if device_type == 'cuda' else 'cpu',
                                enabled=precision.scaled)
