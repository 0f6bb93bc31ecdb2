"""Light-Weight RefineNet models and checkpoint I/O (torch only; no ROS, no engine).

Public surface: :func:`build_model` and the named builders, :class:`LWRefineNet`,
:func:`load_weights`, :func:`read_checkpoint`, :func:`detect_arch`, :func:`save_checkpoint`,
:func:`load_model`, :func:`init_encoder_from_torchvision`, :func:`init_from_checkpoint`,
:func:`fold_batchnorm` and
:data:`DEFAULT_MODEL_PATH`.
"""

from lw_refinenet_ros.model.fusion import fold_batchnorm
from lw_refinenet_ros.model.lwrefinenet import (
    ARCHES,
    OUTPUT_STRIDE,
    LWRefineNet,
    LWRefineNetMobileNetV2,
    LWRefineNetResNet,
    build_model,
    lwrefinenet_mbv2,
    lwrefinenet_resnet50,
    lwrefinenet_resnet101,
    lwrefinenet_resnet152,
)
from lw_refinenet_ros.model.weights import (
    CHECKPOINT_FORMAT,
    DEFAULT_MODEL_PATH,
    CheckpointInfo,
    detect_arch,
    init_encoder_from_torchvision,
    init_from_checkpoint,
    load_model,
    load_weights,
    normalize_state_dict,
    read_checkpoint,
    save_checkpoint,
    torchvision_mbv2_key_map,
)

__all__ = [
    'ARCHES',
    'CHECKPOINT_FORMAT',
    'DEFAULT_MODEL_PATH',
    'OUTPUT_STRIDE',
    'CheckpointInfo',
    'LWRefineNet',
    'LWRefineNetMobileNetV2',
    'LWRefineNetResNet',
    'build_model',
    'detect_arch',
    'fold_batchnorm',
    'init_encoder_from_torchvision',
    'init_from_checkpoint',
    'load_model',
    'load_weights',
    'lwrefinenet_mbv2',
    'lwrefinenet_resnet101',
    'lwrefinenet_resnet152',
    'lwrefinenet_resnet50',
    'normalize_state_dict',
    'read_checkpoint',
    'save_checkpoint',
    'torchvision_mbv2_key_map',
]
