"""Checkpoint I/O: read, verify, load and save Light-Weight RefineNet weights.

Accepted inputs (architecture spec, section 8):

* original release files: a raw state dict, no ``module.`` prefix, with
  ``num_batches_tracked`` (``rf_lw50_voc.pth.tar``, ...);
* training checkpoints wrapped in ``model`` (reference v2), ``state_dict`` or ``segmenter``
  (reference v1), with ``module.`` (DataParallel) or ``_orig_mod.`` (torch.compile) prefixes;
* files without ``num_batches_tracked`` (older torch); the model keeps its own counters;
* this project's format (:data:`CHECKPOINT_FORMAT`, written by :func:`save_checkpoint`), which
  also carries the architecture, class names, colours and free-form metadata, and may store
  parameters as float16 (cast back on load).

Loading is strict: any missing, unexpected or wrong-shape key raises :class:`CheckpointError`
naming the keys. The reference loaded with a bare ``strict=False``, which loads *nothing* from
a wrapped training checkpoint and gives the "green/noise output" of its issues #34 and #56.

Every file is read with ``torch.load(weights_only=True)``: a checkpoint is data, and a pickle
that wants to import or call anything is refused instead of being run.

The model's own state dict already has the reference layout (see :mod:`.lwrefinenet`), so
files in that layout need no renaming. The one key remap table of the package,
:func:`torchvision_mbv2_key_map`, maps torchvision's ImageNet MobileNetV2 onto the encoder.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path
import pickle
import re
from typing import Any, Mapping, Sequence, Union

import torch
from torch import nn

from lw_refinenet_ros.errors import CheckpointError, ConfigError
from lw_refinenet_ros.model.encoders import MBV2_STAGES
from lw_refinenet_ros.model.lwrefinenet import ARCHES, LWRefineNet, build_model

_LOG = logging.getLogger(__name__)

#: Value of the ``format`` field of this project's checkpoints.
CHECKPOINT_FORMAT = 'lw_refinenet_ros/1'

#: The packaged default model (produced by the training pipeline, shipped in the package).
DEFAULT_MODEL_PATH = Path(__file__).parent / 'default' / 'conveyor_mbv2.pt'

#: Wrapper keys of training checkpoints, tried in this order: reference v2 (``model``), the
#: common ``state_dict``, reference v1 (``segmenter``).
WRAPPER_KEYS: tuple[str, ...] = ('model', 'state_dict', 'segmenter')

#: Leading key prefixes added by wrappers: DataParallel/DDP and torch.compile.
STRIPPED_PREFIXES: tuple[str, ...] = ('module.', '_orig_mod.')

#: ResNet depth from the number of ``layer3`` blocks (spec section 8, loader requirement 6).
_RESNET_DEPTH_BY_LAYER3_BLOCKS = {6: 50, 23: 101, 36: 152}

#: Keys of a torchvision ResNet file that are not part of the encoder.
TORCHVISION_RESNET_EXTRA_KEYS = frozenset({'fc.weight', 'fc.bias'})

#: Prefixes of a torchvision MobileNetV2 file that the encoder does not use.
TORCHVISION_MBV2_UNUSED_PREFIXES: tuple[str, ...] = ('features.18.', 'classifier.')

_BN_KEYS = ('weight', 'bias', 'running_mean', 'running_var', 'num_batches_tracked')
_LIST_LIMIT = 20

Source = Union[str, 'os.PathLike[str]', Mapping[str, torch.Tensor]]


@dataclasses.dataclass(frozen=True)
class CheckpointInfo:
    """What a checkpoint file contains, after unwrapping and prefix stripping.

    Attributes:
        state_dict: Flat reference-layout state dict; floating tensors are float32.
        arch: Architecture detected from the keys (one of ``ARCHES``).
        num_classes: K, from the classifier weight.
        class_names: Class names stored in the file (this project's format only).
        colors: One (r, g, b) per class stored in the file (this project's format only).
        metadata: Free-form metadata (this project's format), else the wrapper's other
            plain fields (``epoch``, ``best_val``, ...) when they are simple values.
        source: Where it was read from (path or a description).
    """

    state_dict: dict[str, torch.Tensor]
    arch: str
    num_classes: int
    class_names: tuple[str, ...] | None = None
    colors: tuple[tuple[int, int, int], ...] | None = None
    metadata: dict[str, Any] = dataclasses.field(default_factory=dict)
    source: str = ''


# --------------------------------------------------------------------------- reading files


def _load_file(path: Path) -> Any:
    """``torch.load(weights_only=True)`` with every failure turned into a CheckpointError."""
    if not path.exists():
        raise CheckpointError(f'Checkpoint {path} does not exist; check the path.')
    if not path.is_file():
        raise CheckpointError(f'Checkpoint {path} is not a file.')
    try:
        return torch.load(path, map_location='cpu', weights_only=True)
    except pickle.UnpicklingError as error:
        text = str(error)
        wanted = re.search(r'GLOBAL ([\w.]+)', text)
        if wanted is None:
            lines = text.strip().splitlines() or ['unreadable pickle']
            detail = next((line.strip() for line in lines if 'nsupported' in line), lines[0])
            # Unknown opcodes: random bytes, or a plain pickle (protocol >= 4) rather than a
            # torch.save file; neither can be checked, so neither is loaded.
            raise CheckpointError(
                f'Cannot read checkpoint {path}: the file is corrupt or truncated, or was not '
                f'written by torch.save ({detail[:200]}). Re-download '
                f'or re-export it.') from error
        raise CheckpointError(
            f'Refusing to run code from {path}: loading it would import and call '
            f'{wanted.group(1)}, and a weights file must need nothing but tensors and plain '
            f'containers. If you trust the file, convert it once to a plain state dict, e.g. '
            f'`python -c "import torch; c = torch.load(\'{path}\', weights_only=False); '
            f'torch.save(c.get(\'state_dict\', c), \'plain.pt\')"`, and load plain.pt.'
        ) from error
    except Exception as error:  # noqa: BLE001 - torch raises many types for damaged files
        # Truncated zips raise RuntimeError, empty files EOFError, random bytes KeyError or
        # ValueError: all mean "not a readable checkpoint".
        raise CheckpointError(
            f'Cannot read checkpoint {path}: the file is corrupt or truncated '
            f'({type(error).__name__}: {str(error).strip()[:300]}). Re-download or re-export '
            f'it.') from error


def _is_state_dict(obj: Any) -> bool:
    return (isinstance(obj, Mapping) and len(obj) > 0
            and all(isinstance(k, str) for k in obj)
            and all(isinstance(v, torch.Tensor) for v in obj.values()))


def _simple_fields(obj: Mapping[str, Any], skip: str) -> dict[str, Any]:
    # Keep scalar bookkeeping of training checkpoints (epoch, best_val) as metadata; drop
    # optimiser states and anything large.
    return {k: v for k, v in obj.items()
            if k != skip and isinstance(k, str) and isinstance(v, (int, float, str, bool))}


def _unwrap(obj: Any, source: str) -> tuple[Mapping[str, torch.Tensor], dict[str, Any]]:
    """Find the state dict inside a (possibly nested) training-checkpoint wrapper."""
    metadata: dict[str, Any] = {}
    for _ in range(4):
        if _is_state_dict(obj):
            return obj, metadata
        if not isinstance(obj, Mapping):
            break
        wrapper = next((key for key in WRAPPER_KEYS
                        if key in obj and isinstance(obj[key], Mapping)), None)
        if wrapper is None:
            break
        metadata.update(_simple_fields(obj, wrapper))
        obj = obj[wrapper]
    if isinstance(obj, Mapping):
        keys = sorted(str(k) for k in obj)
        shown = ', '.join(keys[:_LIST_LIMIT]) + (' ...' if len(keys) > _LIST_LIMIT else '')
        bad = sorted(str(k) for k, v in obj.items() if not isinstance(v, torch.Tensor))
        raise CheckpointError(
            f'No state dict found in {source}: expected a mapping of names to tensors, '
            f'possibly wrapped in one of {list(WRAPPER_KEYS)}; found keys [{shown}]'
            + (f' with non-tensor values at {bad[:_LIST_LIMIT]}' if bad else '') + '.')
    raise CheckpointError(f'No state dict found in {source}: it holds a '
                          f'{type(obj).__name__}, not a mapping of names to tensors.')


def _strip_prefixes(state_dict: Mapping[str, torch.Tensor],
                    source: str) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        name = key
        stripped = True
        while stripped:
            stripped = False
            for prefix in STRIPPED_PREFIXES:
                if name.startswith(prefix):
                    name = name[len(prefix):]
                    stripped = True
        if name in out:
            raise CheckpointError(f'{source} has the key {name!r} twice once wrapper '
                                  f'prefixes {list(STRIPPED_PREFIXES)} are stripped.')
        out[name] = value
    return out


def _to_float32(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # Files saved with half=True store parameters as float16; the models are built in
    # float32, and training/engine code converts on its own terms.
    return {k: (v.float() if v.is_floating_point() and v.dtype != torch.float32 else v)
            for k, v in state_dict.items()}


def normalize_state_dict(obj: Any, source: str = 'state dict') -> dict[str, torch.Tensor]:
    """Unwrap ``model``/``state_dict``/``segmenter`` and strip ``module.``/``_orig_mod.``.

    Args:
        obj: Whatever ``torch.load`` returned, or a state dict.
        source: Name used in error messages.

    Returns:
        A flat state dict (tensors untouched).
    """
    if isinstance(obj, Mapping) and obj.get('format') == CHECKPOINT_FORMAT:
        obj = obj.get('state_dict')
    state_dict, _ = _unwrap(obj, source)
    return _strip_prefixes(state_dict, source)


def _fmt_keys(keys: Sequence[str]) -> str:
    shown = ', '.join(keys[:_LIST_LIMIT])
    more = len(keys) - _LIST_LIMIT
    return shown + (f' ... and {more} more' if more > 0 else '')


def detect_arch(state_dict: Mapping[str, Any]) -> tuple[str, int]:
    """Tell the architecture and the class count from the keys of a state dict.

    ``segm.*`` means MobileNet-v2, ``clf_conv.*`` a ResNet whose depth follows from the number
    of ``layer3`` blocks (6/23/36 -> 50/101/152); K is the classifier weight's first dim.
    Wrappers and prefixes are handled as in :func:`read_checkpoint`.

    Returns:
        ``(arch, num_classes)``, arch in ``ARCHES``.

    Raises:
        CheckpointError: The keys fit none of the architectures.
    """
    state_dict = normalize_state_dict(state_dict)
    if 'segm.weight' in state_dict:
        arch, classifier = 'mbv2', 'segm.weight'
    elif 'clf_conv.weight' in state_dict:
        blocks = {key.split('.')[1] for key in state_dict if key.startswith('layer3.')}
        depth = _RESNET_DEPTH_BY_LAYER3_BLOCKS.get(len(blocks))
        if depth is None:
            raise CheckpointError(
                f'ResNet checkpoint with {len(blocks)} layer3 blocks; expected 6, 23 or 36 '
                f'(RF-LW-ResNet-50/101/152).')
        arch, classifier = f'resnet{depth}', 'clf_conv.weight'
    elif 'fc.weight' in state_dict or 'classifier.1.weight' in state_dict:
        raise CheckpointError(
            'This looks like a torchvision ImageNet classifier, not a segmentation model; use '
            'it to initialise an encoder with init_encoder_from_torchvision() and train.')
    else:
        raise CheckpointError(
            'Cannot tell the architecture: no segm.weight (MobileNet-v2) or clf_conv.weight '
            f'(ResNet) key; first keys: {_fmt_keys(list(state_dict))}.')
    weight = state_dict[classifier]
    if weight.dim() != 4 or tuple(weight.shape[1:]) != (256, 3, 3):
        raise CheckpointError(f'{classifier} has shape {tuple(weight.shape)}; expected '
                              f'(K, 256, 3, 3).')
    return arch, int(weight.shape[0])


def _project_fields(obj: Mapping[str, Any], num_classes: int, source: str) -> tuple[
        tuple[str, ...] | None, tuple[tuple[int, int, int], ...] | None, dict[str, Any]]:
    names = obj.get('class_names')
    colors = obj.get('colors')
    metadata = obj.get('metadata') or {}
    if names is not None:
        names = tuple(str(n) for n in names)
        if len(names) != num_classes:
            raise CheckpointError(f'{source} lists {len(names)} class names for a '
                                  f'{num_classes}-class classifier.')
    if colors is not None:
        colors = tuple((int(c[0]), int(c[1]), int(c[2])) for c in colors)
        if len(colors) != num_classes:
            raise CheckpointError(f'{source} lists {len(colors)} colours for a '
                                  f'{num_classes}-class classifier.')
    if not isinstance(metadata, Mapping):
        raise CheckpointError(f'{source}: metadata is a {type(metadata).__name__}, '
                              f'expected a dict.')
    return names, colors, dict(metadata)


def checkpoint_info_from_object(obj: Any, source: str = 'state dict') -> CheckpointInfo:
    """Build a :class:`CheckpointInfo` from something ``torch.load`` returned.

    Raises:
        CheckpointError: No state dict inside, unknown architecture, or inconsistent fields.
    """
    names = colors = None
    metadata: dict[str, Any] = {}
    if isinstance(obj, Mapping) and 'format' in obj and str(obj['format']).startswith(
            'lw_refinenet_ros/'):
        if obj['format'] != CHECKPOINT_FORMAT:
            raise CheckpointError(f'{source} has format {obj["format"]!r}; this version '
                                  f'reads {CHECKPOINT_FORMAT!r}. Upgrade lw_refinenet_ros.')
        state_dict, _ = _unwrap(obj.get('state_dict'), source)
        state_dict = _to_float32(_strip_prefixes(state_dict, source))
        arch, num_classes = detect_arch(state_dict)
        if obj.get('arch') != arch or obj.get('num_classes') != num_classes:
            raise CheckpointError(
                f'{source} says arch={obj.get("arch")!r}, num_classes='
                f'{obj.get("num_classes")!r} but its weights are {arch} with {num_classes} '
                f'classes; the file is inconsistent, re-export it.')
        names, colors, metadata = _project_fields(obj, num_classes, source)
    else:
        raw, metadata = _unwrap(obj, source)
        state_dict = _to_float32(_strip_prefixes(raw, source))
        arch, num_classes = detect_arch(state_dict)
    return CheckpointInfo(state_dict=state_dict, arch=arch, num_classes=num_classes,
                          class_names=names, colors=colors, metadata=metadata,
                          source=source)


def read_checkpoint(path: str | os.PathLike[str]) -> CheckpointInfo:
    """Read a checkpoint file safely and describe it.

    Args:
        path: A release file, a wrapped training checkpoint or this project's format.

    Returns:
        The unwrapped, prefix-free, float32 state dict with the detected arch and K, plus
        class names, colours and metadata when the file has them.

    Raises:
        CheckpointError: Missing, corrupt or truncated file; a pickle that would run code;
            no state dict inside; unknown architecture.
    """
    path = Path(path)
    info = checkpoint_info_from_object(_load_file(path), str(path))
    _LOG.debug('read %s: %s, %d classes, %d keys', path, info.arch, info.num_classes,
               len(info.state_dict))
    return info


# --------------------------------------------------------------------------- loading


def _target(model: nn.Module) -> nn.Module:
    # Accept DataParallel/DDP (``.module``) and torch.compile (``._orig_mod``) wrappers.
    while True:
        if isinstance(model, (nn.DataParallel, nn.parallel.DistributedDataParallel)):
            model = model.module
        elif isinstance(getattr(model, '_orig_mod', None), nn.Module):
            model = model._orig_mod
        else:
            return model


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


def _verified_state(model: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str,
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
            parts.append(f'{len(missing)} missing: {_fmt_keys(missing)}')
        if unexpected:
            parts.append(f'{len(unexpected)} unexpected: {_fmt_keys(unexpected)}')
        if wrong:
            parts.append(f'{len(wrong)} wrong shape: {_fmt_keys(wrong)}')
        raise CheckpointError(f'{source} does not fit the model; nothing was loaded. '
                              + '; '.join(parts) + '.' + _mismatch_hint(model, state_dict))
    bad = [k for k in scope if k in state_dict and state_dict[k].is_floating_point()
           and not bool(torch.isfinite(state_dict[k]).all())]
    if bad:
        raise CheckpointError(f'{source} has NaN/Inf values in {_fmt_keys(bad)}; the '
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
        source: A checkpoint path or a state dict (wrappers and prefixes are handled the same
            way as for files).

    Raises:
        CheckpointError: Unreadable file, or any missing, unexpected or wrong-shape key
            (all listed); the model is left unchanged.
    """
    target = _target(model)
    if isinstance(source, Mapping):
        label = 'the given state dict'
        state_dict = normalize_state_dict(source, label)
    else:
        label = str(source)
        state_dict = read_checkpoint(source).state_dict
    target.load_state_dict(_verified_state(target, state_dict, label), strict=True)
    _LOG.info('loaded weights from %s', label)


def load_model(weights: str | os.PathLike[str] | None, *, arch: str | None = None,
               num_classes: int | None = None) -> tuple[LWRefineNet, CheckpointInfo]:
    """Build the model a checkpoint describes and load it, in eval mode.

    Args:
        weights: Checkpoint path; ``None`` means the packaged default
            (:data:`DEFAULT_MODEL_PATH`).
        arch: If given, the file must be this architecture.
        num_classes: If given, the file must have this many classes.

    Returns:
        ``(model, info)``; the model is float32 on the CPU in eval mode.

    Raises:
        CheckpointError: Missing default model, unreadable file, or a file that does not
            match ``arch``/``num_classes``.
        ConfigError: ``arch`` is not one of ``ARCHES``.
    """
    if arch is not None and arch not in ARCHES:
        raise ConfigError(f'Unknown architecture {arch!r}; expected one of '
                          f'{", ".join(ARCHES)}.')
    if weights is None:
        path = DEFAULT_MODEL_PATH
        if not path.is_file():
            raise CheckpointError(
                f'The packaged default model {path} is missing. Train a model (see the '
                f'README, "Training") and pass it with --weights PATH (node parameter '
                f'`model.weights`), or reinstall the package with its default model.')
    else:
        path = Path(weights)
    info = read_checkpoint(path)
    if arch is not None and info.arch != arch:
        raise CheckpointError(f'{path} holds a {info.arch} model but arch={arch!r} was '
                              f'requested; drop the arch setting (it is read from the file) '
                              f'or pass a {arch} checkpoint.')
    if num_classes is not None and info.num_classes != num_classes:
        raise CheckpointError(
            f'Class-count mismatch: {path} has {info.num_classes} classes but '
            f'num_classes={num_classes} was requested; drop num_classes (it is read from the '
            f'file) or pass a checkpoint trained for {num_classes} classes.')
    model = build_model(info.arch, info.num_classes)
    model.load_state_dict(_verified_state(model, info.state_dict, str(path)), strict=True)
    model.eval()
    _LOG.info('loaded %s (%d classes) from %s', info.arch, info.num_classes, path)
    return model, info


# --------------------------------------------------------------------------- saving


def _check_plain(value: Any, where: str) -> Any:
    # Only types that torch.load(weights_only=True) reads back; tuples become lists.
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_check_plain(v, f'{where}[{i}]') for i, v in enumerate(value)]
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise ConfigError(f'{where} has a non-string key {k!r}; use str keys.')
            out[k] = _check_plain(v, f'{where}[{k!r}]')
        return out
    raise ConfigError(f'{where} is a {type(value).__name__}; checkpoint metadata may hold '
                      f'only None, bool, int, float, str, lists and dicts.')


def save_checkpoint(path: str | os.PathLike[str], model: nn.Module, *, arch: str,
                    class_names: Sequence[str] | None = None,
                    colors: Sequence[Sequence[int]] | None = None,
                    metadata: Mapping[str, Any] | None = None, half: bool = False) -> None:
    """Write ``model`` in this project's checkpoint format (atomically).

    The file holds ``{'format', 'arch', 'num_classes', 'class_names', 'colors', 'state_dict',
    'metadata'}``, only types that ``torch.load(weights_only=True)`` accepts.

    Args:
        path: Destination; parent folders are created.
        model: The model (DataParallel/compiled wrappers are unwrapped).
        arch: Its architecture; must agree with the weights.
        class_names: K names, or None.
        colors: K (r, g, b) triples in 0..255 (tuples, lists or a (K, 3) array), or None.
        metadata: Plain data (str keys; None/bool/int/float/str/lists/dicts).
        half: Store parameters as float16 to halve the file (BatchNorm running statistics
            stay float32); readers cast back to float32.

    Raises:
        ConfigError: Inconsistent arguments, metadata that is not plain data, or weights that
            overflow float16 with ``half=True``.
    """
    state_dict = _strip_prefixes(_target(model).state_dict(), 'the model')
    detected, num_classes = detect_arch(state_dict)
    if arch != detected:
        raise ConfigError(f'save_checkpoint(arch={arch!r}) but the model is {detected}.')
    names = None
    if class_names is not None:
        names = [str(n) for n in class_names]
        if len(names) != num_classes:
            raise ConfigError(f'{len(names)} class names given for {num_classes} classes.')
    color_list = None
    if colors is not None:
        color_list = [[int(c) for c in row] for row in colors]
        if len(color_list) != num_classes or any(
                len(row) != 3 or not all(0 <= c <= 255 for c in row) for row in color_list):
            raise ConfigError(f'colors must be {num_classes} (r, g, b) triples in 0..255.')
    plain_metadata = _check_plain(dict(metadata or {}), 'metadata')
    stored: dict[str, torch.Tensor] = {}
    for key, tensor in state_dict.items():
        # clone(): a view would drag its whole storage into the file.
        tensor = tensor.detach().to('cpu').clone().contiguous()
        if tensor.is_floating_point():
            keep_fp32 = key.endswith(('running_mean', 'running_var')) or not half
            low = tensor.float() if keep_fp32 else tensor.half()
            if not keep_fp32 and not bool(torch.isfinite(low).all()) and bool(
                    torch.isfinite(tensor).all()):
                raise ConfigError(f'{key} overflows float16; save with half=False.')
            tensor = low
        stored[key] = tensor
    payload = {
        'format': CHECKPOINT_FORMAT,
        'arch': arch,
        'num_classes': num_classes,
        'class_names': names,
        'colors': color_list,
        'state_dict': stored,
        'metadata': plain_metadata,
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Write next to the destination and rename, so a crash never leaves a truncated file
    # under the real name (a half-written default model would break the node at startup).
    partial = path.with_name(f'.{path.name}.{os.getpid()}.partial')
    try:
        torch.save(payload, partial)
        os.replace(partial, path)
    finally:
        if partial.exists():
            partial.unlink()
    _LOG.info('saved %s (%d classes%s) to %s', arch, num_classes, ', fp16' if half else '',
              path)


# --------------------------------------------------------------------------- ImageNet init


def torchvision_mbv2_key_map() -> dict[str, str]:
    """The remap table: torchvision MobileNetV2 ``features.0..17`` key -> encoder key.

    Spec section 4: ``features.0.{0,1}`` -> ``layer1.{0,1}``; ``features.1..17`` ->
    ``layer2.0``, ``layer3.0-1``, ..., ``layer8.0``; inside a t = 6 block ``conv.0.{0,1}``,
    ``conv.1.{0,1}``, ``conv.2``, ``conv.3`` -> ``output.0.{0,1}``, ``output.1.{0,1}``,
    ``output.2.0``, ``output.2.1``; torchvision's t = 1 block has no expansion, so its
    ``conv.0.{0,1}``, ``conv.1``, ``conv.2`` -> ``output.1.{0,1}``, ``output.2.0``,
    ``output.2.1`` (the reference's extra ``output.0`` is set to an identity, see
    :func:`init_encoder_from_torchvision`).
    """
    table: dict[str, str] = {}

    def conv(src: str, dst: str) -> None:
        table[f'{src}.weight'] = f'{dst}.weight'

    def bn(src: str, dst: str) -> None:
        for name in _BN_KEYS:
            table[f'{src}.{name}'] = f'{dst}.{name}'

    conv('features.0.0', 'layer1.0')
    bn('features.0.1', 'layer1.1')
    feature = 1
    for stage, (expansion, _, blocks, _) in enumerate(MBV2_STAGES, start=2):
        for block in range(blocks):
            src, dst = f'features.{feature}.conv', f'layer{stage}.{block}.output'
            if expansion == 1:
                conv(f'{src}.0.0', f'{dst}.1.0')
                bn(f'{src}.0.1', f'{dst}.1.1')
                conv(f'{src}.1', f'{dst}.2.0')
                bn(f'{src}.2', f'{dst}.2.1')
            else:
                conv(f'{src}.0.0', f'{dst}.0.0')
                bn(f'{src}.0.1', f'{dst}.0.1')
                conv(f'{src}.1.0', f'{dst}.1.0')
                bn(f'{src}.1.1', f'{dst}.1.1')
                conv(f'{src}.2', f'{dst}.2.0')
                bn(f'{src}.3', f'{dst}.2.1')
            feature += 1
    return table


def _mbv2_identity_expansions(model: nn.Module) -> dict[str, torch.Tensor]:
    """Identity weights for the expansions torchvision does not have (t = 1 blocks).

    Their input is a ReLU6 output in [0, 6]; conv = eye, BN with weight 1, bias 0, mean 0 and
    running_var = 1 - eps (so that var + eps = 1 exactly; var = 1 would scale by 0.999995),
    and the following ReLU6 is then an identity too.
    """
    current = model.state_dict()
    out: dict[str, torch.Tensor] = {}
    for stage, (expansion, _, blocks, _) in enumerate(MBV2_STAGES, start=2):
        if expansion != 1:
            continue
        for block in range(blocks):
            prefix = f'layer{stage}.{block}.output.0'
            weight = current[f'{prefix}.0.weight']
            channels = weight.shape[0]
            bn_module = model.get_submodule(f'{prefix}.1')
            eps = float(bn_module.eps)  # type: ignore[arg-type]
            out[f'{prefix}.0.weight'] = torch.eye(channels).reshape(channels, channels, 1, 1)
            out[f'{prefix}.1.weight'] = torch.ones(channels)
            out[f'{prefix}.1.bias'] = torch.zeros(channels)
            out[f'{prefix}.1.running_mean'] = torch.zeros(channels)
            out[f'{prefix}.1.running_var'] = torch.full((channels,), 1.0 - eps)
            out[f'{prefix}.1.num_batches_tracked'] = torch.zeros((), dtype=torch.int64)
    return out


def init_encoder_from_torchvision(model: nn.Module, path_or_state_dict: Source) -> None:
    """Initialise the encoder from a torchvision ImageNet file; the decoder is untouched.

    ResNet files (``resnet50-19c8e357.pth``, ...) load directly: their keys are the encoder's
    plus exactly ``fc.weight`` and ``fc.bias``. MobileNetV2 files go through
    :func:`torchvision_mbv2_key_map` plus the identity expansion; ``features.18.*`` and
    ``classifier.*`` are ignored. Every shape is checked; ``num_batches_tracked`` may be
    absent (2017-era files).

    Args:
        model: A model from :func:`build_model`.
        path_or_state_dict: A torchvision ``.pth`` file or its state dict.

    Raises:
        CheckpointError: The file is not the torchvision counterpart of this encoder (the
            offending keys are listed); the model is left unchanged.
    """
    target = _target(model)
    if not isinstance(target, LWRefineNet):
        raise CheckpointError(f'init_encoder_from_torchvision needs an LWRefineNet, got '
                              f'{type(target).__name__}.')
    if isinstance(path_or_state_dict, Mapping):
        source = 'the given torchvision state dict'
        state_dict = normalize_state_dict(path_or_state_dict, source)
    else:
        source = str(path_or_state_dict)
        state_dict = normalize_state_dict(_load_file(Path(path_or_state_dict)), source)
    encoder_keys = target.encoder_state_keys()
    if target.arch == 'mbv2':
        table = torchvision_mbv2_key_map()
        unexpected = [k for k in state_dict if k not in table
                      and not k.startswith(TORCHVISION_MBV2_UNUSED_PREFIXES)]
        if unexpected:
            raise CheckpointError(
                f'{source} is not a torchvision MobileNetV2 file: {len(unexpected)} '
                f'unexpected keys: {_fmt_keys(unexpected)}.')
        mapped = {table[k]: v for k, v in state_dict.items() if k in table}
        mapped.update(_mbv2_identity_expansions(target))
    else:
        extra = sorted(k for k in state_dict if not target.is_encoder_key(k))
        if set(extra) != TORCHVISION_RESNET_EXTRA_KEYS:
            raise CheckpointError(
                f'{source} is not a torchvision ResNet classifier file for {target.arch}: '
                f'besides the encoder keys it must have exactly fc.weight and fc.bias, but '
                f'has [{_fmt_keys(extra)}].')
        mapped = {k: v for k, v in state_dict.items() if k not in TORCHVISION_RESNET_EXTRA_KEYS}
    full = _verified_state(target, mapped, source, keys=encoder_keys)
    target.load_state_dict(full, strict=True)
    _LOG.info('initialised the %s encoder from %s', target.arch, source)


def init_from_checkpoint(model: nn.Module, path: str | os.PathLike[str]) -> tuple[str, ...]:
    """Start a training from a trained LW-RefineNet file (fine-tuning), e.g. the default model.

    Every key is verified as in :func:`load_weights`. The one exception is deliberate and
    logged: when the file was trained for a different number of classes, the final classifier
    (``segm.*`` / ``clf_conv.*``) keeps its fresh initialisation and everything else is
    loaded, which is how a user adapts the conveyor model to their own parts.

    Args:
        model: A model from :func:`build_model` for the new class count.
        path: A checkpoint of the same architecture.

    Returns:
        The keys that were *not* loaded (empty when the class counts match).

    Raises:
        CheckpointError: Unreadable file, another architecture, or any other missing,
            unexpected or wrong-shape key (all listed); the model is left unchanged.
    """
    target = _target(model)
    if not isinstance(target, LWRefineNet):
        raise CheckpointError(f'init_from_checkpoint needs an LWRefineNet, got '
                              f'{type(target).__name__}.')
    info = read_checkpoint(path)
    if info.arch != target.arch:
        raise CheckpointError(f'{path} holds a {info.arch} model but this training builds '
                              f'{target.arch}; pass --arch {info.arch} or another file.')
    if info.num_classes == target.num_classes:
        load_weights(target, info.state_dict)
        return ()
    prefix = f'{target.classifier_name}.'
    keep = [k for k in target.state_dict() if not k.startswith(prefix)]
    state_dict = {k: v for k, v in info.state_dict.items() if not k.startswith(prefix)}
    target.load_state_dict(_verified_state(target, state_dict, str(path), keys=keep),
                           strict=True)
    skipped = tuple(k for k in target.state_dict() if k.startswith(prefix))
    _LOG.warning('initialised from %s (%d classes) for %d classes: the classifier %s was '
                 'left freshly initialised', path, info.num_classes, target.num_classes,
                 ', '.join(skipped))
    return skipped
