"""Types the training modules share without importing each other.

``recipe.py`` builds optimisers from a few fields of
:class:`~lw_refinenet_ros.training.trainer.TrainConfig`, and ``trainer.py`` imports
``recipe.py`` (through ``epoch_loop.py``). Naming those fields here, as a protocol, lets the
recipe state what it reads without importing the trainer, so the training package has no
import circle (test/unit/test_layering.py). No torch here.
"""

from __future__ import annotations

from typing import Protocol


class RecipeSettings(Protocol):
    """What :func:`~lw_refinenet_ros.training.recipe.make_optimizer` reads from a
    ``TrainConfig``: the optimiser and its learning rates per stage."""

    encoder_lrs: tuple[float, ...]
    decoder_lr_mult: float
    optimizer: str
    momentum: float
    weight_decay: float
