"""The reference recipe's optimisation pieces: parameter groups, stages, frozen BatchNorm.

Encoder and decoder train at different learning rates (decoder x ``decoder_lr_mult``), split
by the reference regex on parameter names; a run is a list of stages, each with its own
encoder learning rate and a freshly created optimiser (the reference v1 behaviour: momentum
restarts at every stage). See docs/architecture.md, "Training recipe".
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import torch
from torch import nn

if TYPE_CHECKING:
    from lw_refinenet_ros.training.types import RecipeSettings as TrainConfig

# Reference v1 split: these names are the encoder (ResNet conv1/bn1/layerN, mbv2 layerN).
ENCODER_REGEX = r'.*conv1.*|.*bn1.*|.*layer.*'


def freeze_batchnorm(model: nn.Module) -> None:
    """Keep every BatchNorm in eval mode (running statistics fixed), as the reference does."""
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.eval()


def split_parameters(model: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """(encoder, decoder) parameters by the reference regex on parameter names."""
    pattern = re.compile(ENCODER_REGEX)
    encoder, decoder = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        (encoder if pattern.match(name) else decoder).append(param)
    return encoder, decoder


def make_optimizer(model: nn.Module, config: TrainConfig, stage: int) -> torch.optim.Optimizer:
    """The stage's optimiser: encoder group at ``encoder_lrs[stage]``, decoder at x mult."""
    encoder, decoder = split_parameters(model)
    lr = config.encoder_lrs[stage]
    groups = [{'params': encoder, 'lr': lr, 'name': 'encoder'},
              {'params': decoder, 'lr': lr * config.decoder_lr_mult, 'name': 'decoder'}]
    if config.optimizer == 'adam':
        return torch.optim.Adam(groups, lr=lr, weight_decay=config.weight_decay)
    return torch.optim.SGD(groups, lr=lr, momentum=config.momentum,
                           weight_decay=config.weight_decay)


def stage_of(epoch: int, stage_epochs: tuple[int, ...]) -> int:
    """Index of the stage an epoch belongs to (the last stage absorbs any overflow)."""
    end = 0
    for stage, count in enumerate(stage_epochs):
        end += count
        if epoch < end:
            return stage
    return len(stage_epochs) - 1
