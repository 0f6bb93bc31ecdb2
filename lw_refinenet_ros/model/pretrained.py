"""Initialisation from other weights: ImageNet encoders and fine-tuning across class counts.

:func:`imagenet_weights` fetches torchvision's ImageNet file for an encoder into torch's
hub cache (checked against the SHA-256 in its name) or, offline, says which URL to fetch and
where to put the file (``lw-refinenet train --init-encoder imagenet``).

The model's own state dict already has the reference layout (see :mod:`.lwrefinenet`), so
files in that layout need no renaming. The one key remap table of the package,
:func:`torchvision_mbv2_key_map`, maps torchvision's ImageNet MobileNetV2 onto the encoder;
torchvision ResNets fit the encoder's names as they are (minus the ``fc`` classifier).
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
import re
from typing import Mapping

import torch
from torch import nn

from lw_refinenet_ros.atomic import atomic_file
from lw_refinenet_ros.errors import CheckpointError
from lw_refinenet_ros.model.boundary import BOUNDARY_PREFIX
from lw_refinenet_ros.model.checkpoint import (
    Source,
    format_keys,
    load_file,
    normalize_state_dict,
    read_checkpoint,
    unwrap_model,
)
from lw_refinenet_ros.model.encoders import MBV2_STAGES
from lw_refinenet_ros.model.loading import load_weights, verified_state_dict
from lw_refinenet_ros.model.lwrefinenet import LWRefineNet

_LOG = logging.getLogger(__name__)

#: Keys of a torchvision ResNet file that are not part of the encoder.
TORCHVISION_RESNET_EXTRA_KEYS = frozenset({'fc.weight', 'fc.bias'})

#: Prefixes of a torchvision MobileNetV2 file that the encoder does not use.
TORCHVISION_MBV2_UNUSED_PREFIXES: tuple[str, ...] = ('features.18.', 'classifier.')

_BN_KEYS = ('weight', 'bias', 'running_mean', 'running_var', 'num_batches_tracked')


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
    target = unwrap_model(model)
    if not isinstance(target, LWRefineNet):
        raise CheckpointError(f'init_encoder_from_torchvision needs an LWRefineNet, got '
                              f'{type(target).__name__}.')
    if isinstance(path_or_state_dict, Mapping):
        source = 'the given torchvision state dict'
        state_dict = normalize_state_dict(path_or_state_dict, source)
    else:
        source = str(path_or_state_dict)
        state_dict = normalize_state_dict(load_file(Path(path_or_state_dict)), source)
    encoder_keys = target.encoder_state_keys()
    if target.arch == 'mbv2':
        table = torchvision_mbv2_key_map()
        unexpected = [k for k in state_dict if k not in table
                      and not k.startswith(TORCHVISION_MBV2_UNUSED_PREFIXES)]
        if unexpected:
            raise CheckpointError(
                f'{source} is not a torchvision MobileNetV2 file: {len(unexpected)} '
                f'unexpected keys: {format_keys(unexpected)}.')
        mapped = {table[k]: v for k, v in state_dict.items() if k in table}
        mapped.update(_mbv2_identity_expansions(target))
    else:
        extra = sorted(k for k in state_dict if not target.is_encoder_key(k))
        if set(extra) != TORCHVISION_RESNET_EXTRA_KEYS:
            raise CheckpointError(
                f'{source} is not a torchvision ResNet classifier file for {target.arch}: '
                f'besides the encoder keys it must have exactly fc.weight and fc.bias, but '
                f'has [{format_keys(extra)}].')
        mapped = {k: v for k, v in state_dict.items() if k not in TORCHVISION_RESNET_EXTRA_KEYS}
    full = verified_state_dict(target, mapped, source, keys=encoder_keys)
    target.load_state_dict(full, strict=True)
    _LOG.info('initialised the %s encoder from %s', target.arch, source)


#: torchvision's ImageNet classifier files for each encoder (their names end in the first
#: hex digits of the file's SHA-256, which :func:`imagenet_weights` checks).
IMAGENET_URLS: dict[str, str] = {
    'mbv2': 'https://download.pytorch.org/models/mobilenet_v2-b0353104.pth',
    'resnet50': 'https://download.pytorch.org/models/resnet50-19c8e357.pth',
    'resnet101': 'https://download.pytorch.org/models/resnet101-5d3b4d8f.pth',
    'resnet152': 'https://download.pytorch.org/models/resnet152-b121ed2d.pth',
}

_HASH_IN_NAME = re.compile(r'-([a-f0-9]{8,64})\.')


def imagenet_cache_dir() -> Path:
    """Where ImageNet files are kept: torch's hub cache (``$TORCH_HOME/hub/checkpoints``),
    the folder torchvision itself downloads to, so a file it fetched is reused."""
    return Path(torch.hub.get_dir()) / 'checkpoints'


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, 'rb') as stream:
        for block in iter(lambda: stream.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


def imagenet_weights(arch: str, *, url: str | None = None, sha256: str | None = None,
                     cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The torchvision ImageNet file for ``arch``'s encoder: cached, else downloaded; its
    SHA-256 checked either way.

    Args:
        arch: ``mbv2`` or ``resnet50/101/152``.
        url: Where to fetch it (default :data:`IMAGENET_URLS`; ``file://`` works too).
        sha256: The expected digest, or a prefix of it (default: the one in the file name).
        cache_dir: Default :func:`imagenet_cache_dir`.

    Raises:
        CheckpointError: Unknown arch; no network (the message gives the URL and where to
            put the file by hand); a file whose hash does not match (it is not kept).
    """
    import urllib.error
    import urllib.request

    if url is None:
        if arch not in IMAGENET_URLS:
            raise CheckpointError(f'No ImageNet weights known for {arch!r}; one of '
                                  f'{", ".join(IMAGENET_URLS)}.')
        url = IMAGENET_URLS[arch]
    name = url.rstrip('/').rsplit('/', 1)[-1]
    if sha256 is None:
        found = _HASH_IN_NAME.search(name)
        if found is None:
            raise CheckpointError(f'{url}: no hash in the file name; pass the expected sha256.')
        sha256 = found.group(1)
    expected = sha256.lower()
    folder = Path(cache_dir) if cache_dir is not None else imagenet_cache_dir()
    target = folder / name
    if target.is_file():
        actual = _sha256(target)
        if not actual.startswith(expected):
            raise CheckpointError(f'{target} has SHA-256 {actual[:16]}..., not {expected}...: '
                                  f'the file is damaged or another one; delete it and run '
                                  f'again (or fetch {url} into it by hand).')
        return target
    folder.mkdir(parents=True, exist_ok=True)
    try:
        _LOG.info('downloading %s to %s', url, target)
        with urllib.request.urlopen(url, timeout=60) as response, atomic_file(target) as out:
            digest = hashlib.sha256()
            while chunk := response.read(1 << 20):
                digest.update(chunk)
                out.write(chunk)
            actual = digest.hexdigest()
            if not actual.startswith(expected):
                # Raised inside the block: the download is removed, not renamed.
                raise CheckpointError(f'{url} downloaded with SHA-256 {actual[:16]}..., '
                                      f'expected {expected}...; the file was not kept. Try '
                                      f'again, or fetch it by hand and check it.')
    except (urllib.error.URLError, OSError, ValueError) as error:
        reason = getattr(error, 'reason', None) or error
        raise CheckpointError(
            f'Cannot download the ImageNet weights for {arch} ({reason}). Offline: fetch '
            f'{url} on a machine with network access and put the file at {target}, or pass '
            f"--init-encoder with the file's path.") from None
    return target


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
    target = unwrap_model(model)
    if not isinstance(target, LWRefineNet):
        raise CheckpointError(f'init_from_checkpoint needs an LWRefineNet, got '
                              f'{type(target).__name__}.')
    info = read_checkpoint(path)
    if info.arch != target.arch:
        raise CheckpointError(f'{path} holds a {info.arch} model but this training builds '
                              f'{target.arch}; pass --arch {info.arch} or another file.')
    source = info.state_dict
    if target.boundary is None and any(k.startswith(BOUNDARY_PREFIX) for k in source):
        # Training the classes changes the features the head reads: it would no longer fit.
        source = {k: v for k, v in source.items() if not k.startswith(BOUNDARY_PREFIX)}
        _LOG.warning('%s has the part-boundary head; it is left out of this training (run '
                     'lw-refinenet train-boundary on the result to add it again)', path)
    if info.num_classes == target.num_classes:
        load_weights(target, source)
        return ()
    prefix = f'{target.classifier_name}.'
    keep = [k for k in target.state_dict() if not k.startswith(prefix)]
    state_dict = {k: v for k, v in source.items() if not k.startswith(prefix)}
    target.load_state_dict(verified_state_dict(target, state_dict, str(path), keys=keep),
                           strict=True)
    skipped = tuple(k for k in target.state_dict() if k.startswith(prefix))
    _LOG.warning('initialised from %s (%d classes) for %d classes: the classifier %s was '
                 'left freshly initialised', path, info.num_classes, target.num_classes,
                 ', '.join(skipped))
    return skipped
