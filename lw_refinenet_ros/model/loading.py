"""Verified loading: a state dict goes into a model only if every key and shape fits.

Loading is strict: any missing, unexpected or wrong-shape key raises :class:`CheckpointError`
naming the keys, and the model is left unchanged. The reference code loaded with a bare
``strict=False``, which loads *nothing* from a wrapped training checkpoint and gives the
"green/noise output" its users reported. NaN/Inf weights (a diverged run) are refused too.
"""

from __future__ import annotations

import logging
import os
from typing import Mapping, Sequence

import torch
from torch import nn

from lw_refinenet_ros.errors import CheckpointError
from lw_refinenet_ros.model.checkpoint import (
    Source,
    detect_arch,
    format_keys,
    normalize_state_dict,
    read_checkpoint,
    unwrap_model,
)

_LOG = logging.getLogger(__name__)


def _mismatch_hint(model: nn.Module, state_dict: Mapping[str, torch.Tensor]) -> str:
    try:
        arch, num_classes = detect_arch(state_dict)
    except CheckpointError:
        return ''
    model_arch = getattr(model, 'arch', None)
    model_k = getattr(model, 'num_classes', None)
    if model_arch is not None and arch != model_arch:
        return (f' The weights are {arch} with {num_classes} classes but the model is '
                f'{model_arch}; build the model with arch={arch!r} (load_model() reads it '
                f'from the file).')
    if model_k is not None and num_classes != model_k:
        return (f' Class-count mismatch: the weights have {num_classes} classes but the model '
                f'was built with num_classes={model_k}; use num_classes={num_classes} '
                f'(load_model() reads it from the file) or train for {model_k} classes.')
    return ''


def verified_state_dict(model: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str,
                    *, keys: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
    """Check ``state_dict`` against ``model`` (or its ``keys`` subset) and return a full one.

    Every key in scope must be present with its exact shape, except ``num_batches_tracked``
    (absent from old files; the model keeps its own). Keys outside the scope are errors.
    Floating tensors are cast to the model's dtype.
    """
    current = model.state_dict()
    scope = list(current) if keys is None else list(keys)
    missing = [k for k in scope if k not in state_dict
               and not k.endswith('num_batches_tracked')]
    scope_set = set(scope)
    unexpected = [k for k in state_dict if k not in scope_set]
    wrong = [f'{k} {tuple(state_dict[k].shape)} (model: {tuple(current[k].shape)})'
             for k in scope if k in state_dict and state_dict[k].shape != current[k].shape]
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f'{len(missing)} missing: {format_keys(missing)}')
        if unexpected:
            parts.append(f'{len(unexpected)} unexpected: {format_keys(unexpected)}')
        if wrong:
            parts.append(f'{len(wrong)} wrong shape: {format_keys(wrong)}')
        raise CheckpointError(f'{source} does not fit the model; nothing was loaded. '
                              + '; '.join(parts) + '.' + _mismatch_hint(model, state_dict))
    bad = [k for k in scope if k in state_dict and state_dict[k].is_floating_point()
           and not bool(torch.isfinite(state_dict[k]).all())]
    if bad:
        raise CheckpointError(f'{source} has NaN/Inf values in {format_keys(bad)}; the '
                              f'training run that wrote it diverged. Use an earlier file.')
    full = dict(current)
    for key in scope:
        if key in state_dict:
            value = state_dict[key]
            if value.is_floating_point() and current[key].is_floating_point():
                value = value.to(current[key].dtype)
            full[key] = value
    return full


def load_weights(model: nn.Module, source: Source) -> None:
    """Load weights into ``model`` with every key and shape verified.

    Args:
        model: A model from :func:`build_model` (DataParallel/compiled wrappers accepted).
        source: A checkpoint path (``~`` is the home folder) or a state dict (wrappers and
            prefixes are handled the same way as for files).

    Raises:
        CheckpointError: Unreadable file, or any missing, unexpected or wrong-shape key
            (all listed); the model is left unchanged.
    """
    target = unwrap_model(model)
    if isinstance(source, Mapping):
        label = 'the given state dict'
        state_dict = normalize_state_dict(source, label)
    else:
        # '~/.torch/models/...' as the README writes it: the home folder, not a folder '~'.
        source = os.path.expanduser(os.fspath(source))
        label = source
        state_dict = read_checkpoint(source).state_dict
    target.load_state_dict(verified_state_dict(target, state_dict, label), strict=True)
    _LOG.info('loaded weights from %s', label)
