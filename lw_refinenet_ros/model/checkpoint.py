"""The checkpoint file format: reading any supported layout, and writing this project's.

Accepted inputs (see docs/architecture.md, "Checkpoints"):

* original release files: a raw state dict, no ``module.`` prefix, with
  ``num_batches_tracked`` (``rf_lw50_voc.pth.tar``, ...);
* training checkpoints wrapped in ``model`` (reference v2), ``state_dict`` or ``segmenter``
  (reference v1), with ``module.`` (DataParallel) or ``_orig_mod.`` (torch.compile) prefixes;
* files without ``num_batches_tracked`` (older torch); the model keeps its own counters;
* this project's format (:data:`CHECKPOINT_FORMAT`, written by :func:`save_checkpoint`), which
  also carries the architecture, class names, colours and free-form metadata, and may store
  parameters as float16 (cast back on load).

A model that carries itself: a training run also writes a *model card* into the metadata
(:func:`model_card`): the preprocessing it was trained with (``preprocessing``: mean/std),
the image size it was trained at (``input_size``, [width, height]) and scale range, and its
validation scores (``val_scores``). :func:`default_max_side` turns the training size into
the network input size to run at, so a model trained on 320x240 images runs a 640x480
camera at 320x240 unless the user sets ``max_side``.

Every file is read with ``torch.load(weights_only=True)``: a checkpoint is data, and a pickle
that wants to import or call anything is refused instead of being run. Reading yields a
:class:`CheckpointInfo` (flat reference-layout state dict, architecture and classes detected
from the keys); putting it into a model is :mod:`.loading`'s job.
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

from lw_refinenet_ros.atomic import atomic_file
from lw_refinenet_ros.constants import IMAGENET_MEAN, IMAGENET_STD
from lw_refinenet_ros.errors import CheckpointError, ConfigError

_LOG = logging.getLogger(__name__)

#: Value of the ``format`` field of this project's checkpoints.
CHECKPOINT_FORMAT = 'lw_refinenet_ros/1'

#: Wrapper keys of training checkpoints, tried in this order: reference v2 (``model``), the
#: common ``state_dict``, reference v1 (``segmenter``).
WRAPPER_KEYS: tuple[str, ...] = ('model', 'state_dict', 'segmenter')

#: Leading key prefixes added by wrappers: DataParallel/DDP and torch.compile.
STRIPPED_PREFIXES: tuple[str, ...] = ('module.', '_orig_mod.')

#: ResNet depth from the number of ``layer3`` blocks.
_RESNET_DEPTH_BY_LAYER3_BLOCKS = {6: 50, 23: 101, 36: 152}

#: Key lists in error messages are cut after this many entries.
LIST_LIMIT = 20

#: A checkpoint path, or a state dict (possibly wrapped or prefixed).
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


def load_file(path: Path) -> Any:
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
        shown = ', '.join(keys[:LIST_LIMIT]) + (' ...' if len(keys) > LIST_LIMIT else '')
        bad = sorted(str(k) for k, v in obj.items() if not isinstance(v, torch.Tensor))
        raise CheckpointError(
            f'No state dict found in {source}: expected a mapping of names to tensors, '
            f'possibly wrapped in one of {list(WRAPPER_KEYS)}; found keys [{shown}]'
            + (f' with non-tensor values at {bad[:LIST_LIMIT]}' if bad else '') + '.')
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


def format_keys(keys: Sequence[str]) -> str:
    shown = ', '.join(keys[:LIST_LIMIT])
    more = len(keys) - LIST_LIMIT
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
            f'(ResNet) key; first keys: {format_keys(list(state_dict))}.')
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
    _check_preprocessing(metadata.get('preprocessing'), source)
    return names, colors, dict(metadata)


# --------------------------------------------------------------------------- model card


def model_card(*, input_size: Sequence[int] | None,
               train_scale: Sequence[float] | None = None) -> dict[str, Any]:
    """The metadata a training run stores so that the model runs as it was trained.

    Args:
        input_size: (width, height) of the training images (their median), or None.
        train_scale: (min, max) of the random scale the crops were taken at.
    """
    card: dict[str, Any] = {'preprocessing': {'mean': list(IMAGENET_MEAN),
                                              'std': list(IMAGENET_STD),
                                              'input': 'RGB scaled to 0..1'}}
    if input_size is not None:
        card['input_size'] = [int(input_size[0]), int(input_size[1])]
    if train_scale is not None:
        card['train_scale'] = [float(train_scale[0]), float(train_scale[1])]
    return card


def val_scores(miou: float, iou: Sequence[float | None], class_names: Sequence[str],
               pixel_accuracy: float, images: int) -> dict[str, Any]:
    """The ``val_scores`` entry of a model card (per-class IoU by name; None = absent)."""
    return {'miou': float(miou), 'pixel_accuracy': float(pixel_accuracy), 'images': int(images),
            'iou': {str(n): (None if v is None or v != v else float(v))
                    for n, v in zip(class_names, iou)}}


def _check_preprocessing(value: Any, source: str) -> None:
    """Refuse a model trained with a normalisation the engine does not apply."""
    if value is None:
        return
    if not isinstance(value, Mapping):
        raise CheckpointError(f'{source}: metadata preprocessing must be a dict with mean and '
                              f'std, got {type(value).__name__}.')
    for key, expected in (('mean', IMAGENET_MEAN), ('std', IMAGENET_STD)):
        given = value.get(key)
        if given is None:
            continue
        if not isinstance(given, (list, tuple)) or len(given) != 3 or any(
                abs(float(a) - b) > 1e-6 for a, b in zip(given, expected)):
            raise CheckpointError(
                f'{source} was trained with {key} {given}, but this package normalises '
                f'every image with {key} {list(expected)} (ImageNet statistics); retrain '
                f'with this package or convert the model.')


def trained_input_size(metadata: Mapping[str, Any]) -> tuple[int, int] | None:
    """(width, height) the model was trained at, from its model card, or for older runs on
    the on-the-fly conveyor from their configuration; None when the file does not say."""
    size = metadata.get('input_size')
    if size is None and metadata.get('layout') == 'conveyor':
        size = (metadata.get('config') or {}).get('conveyor_size')
    if isinstance(size, (list, tuple)) and len(size) == 2 and all(
            isinstance(v, int) and v > 0 for v in size):
        return int(size[0]), int(size[1])
    return None


def default_max_side(metadata: Mapping[str, Any]) -> int:
    """The ``max_side`` to run a model at when the user sets none: the longer side of the
    images it was trained at (0 = native resolution when the file does not say).

    A camera that sees the belt at twice the training resolution then shows every part at
    the size the model learnt; frames no larger than that run unchanged (never upscaled).
    """
    size = trained_input_size(metadata)
    return max(size) if size is not None else 0


def engine_defaults(metadata: Mapping[str, Any], *, max_side: int | None) -> dict[str, Any]:
    """Engine options a checkpoint implies for what the user left unset.

    Args:
        metadata: The checkpoint's metadata (:attr:`CheckpointInfo.metadata`).
        max_side: The user's ``max_side``, or None when not set (0 is a setting: native).

    Returns:
        ``{'max_side': ...}`` from :func:`default_max_side` when unset, else ``{}``; pass
        it as overrides to the engine configuration.
    """
    if max_side is not None:
        return {}
    return {'max_side': default_max_side(metadata)}


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
    info = checkpoint_info_from_object(load_file(path), str(path))
    _LOG.debug('read %s: %s, %d classes, %d keys', path, info.arch, info.num_classes,
               len(info.state_dict))
    return info


def unwrap_model(model: nn.Module) -> nn.Module:
    """The model inside DataParallel/DDP (``.module``) and torch.compile (``._orig_mod``)."""
    # Accept DataParallel/DDP (``.module``) and torch.compile (``._orig_mod``) wrappers.
    while True:
        if isinstance(model, (nn.DataParallel, nn.parallel.DistributedDataParallel)):
            model = model.module
        elif isinstance(getattr(model, '_orig_mod', None), nn.Module):
            model = model._orig_mod
        else:
            return model


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
    state_dict = _strip_prefixes(unwrap_model(model).state_dict(), 'the model')
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
    with atomic_file(path) as stream:
        torch.save(payload, stream)
    _LOG.info('saved %s (%d classes%s) to %s', arch, num_classes, ', fp16' if half else '',
              path)
