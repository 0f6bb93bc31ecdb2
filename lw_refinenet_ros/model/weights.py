"""The model weights the package runs: the packaged default model and :func:`load_model`.

Checkpoint I/O is split along its jobs; this module is the entry point and keeps every public
name importable from its old place:

- :mod:`.checkpoint`: the file format (reading any supported layout, writing this project's);
- :mod:`.loading`: verified loading (every key and shape checked, nothing half-loaded);
- :mod:`.pretrained`: ImageNet encoder initialisation and fine-tuning across class counts.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from lw_refinenet_ros.errors import CheckpointError, ConfigError
from lw_refinenet_ros.model.boundary import boundary_flag
from lw_refinenet_ros.model.checkpoint import (
    CHECKPOINT_FORMAT,
    STRIPPED_PREFIXES,
    WRAPPER_KEYS,
    CheckpointInfo,
    Source,
    checkpoint_info_from_object,
    detect_arch,
    normalize_state_dict,
    read_checkpoint,
    save_checkpoint,
)
from lw_refinenet_ros.model.loading import load_weights, verified_state_dict
from lw_refinenet_ros.model.lwrefinenet import ARCHES, LWRefineNet, build_model
from lw_refinenet_ros.model.pretrained import (
    TORCHVISION_MBV2_UNUSED_PREFIXES,
    TORCHVISION_RESNET_EXTRA_KEYS,
    init_encoder_from_torchvision,
    init_from_checkpoint,
    torchvision_mbv2_key_map,
)

__all__ = [
    'CHECKPOINT_FORMAT', 'DEFAULT_MODEL_PATH', 'STRIPPED_PREFIXES',
    'TORCHVISION_MBV2_UNUSED_PREFIXES', 'TORCHVISION_RESNET_EXTRA_KEYS', 'WRAPPER_KEYS',
    'CheckpointInfo', 'Source', 'checkpoint_info_from_object', 'detect_arch',
    'init_encoder_from_torchvision', 'init_from_checkpoint', 'load_model', 'load_weights',
    'normalize_state_dict', 'read_checkpoint', 'save_checkpoint', 'torchvision_mbv2_key_map',
]

_LOG = logging.getLogger(__name__)

#: The packaged default model (produced by the training pipeline, shipped in the package).
#: Read at call time by :func:`load_model`, so tests can point it elsewhere.
DEFAULT_MODEL_PATH = Path(__file__).parent / 'default' / 'conveyor_mbv2.pt'


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
    model = build_model(info.arch, info.num_classes,
                        boundary=boundary_flag(info.metadata, info.state_dict, str(path)))
    model.load_state_dict(verified_state_dict(model, info.state_dict, str(path)), strict=True)
    model.eval()
    _LOG.info('loaded %s (%d classes) from %s', info.arch, info.num_classes, path)
    return model, info
