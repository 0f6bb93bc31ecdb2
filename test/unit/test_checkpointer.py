"""The training run's files and resuming from them, without training (fast)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lw_refinenet_ros.errors import ConfigError
from lw_refinenet_ros.model import build_model, read_checkpoint
from lw_refinenet_ros.training import checkpointer as checkpointer_module
from lw_refinenet_ros.training.checkpointer import (
    PLOT_EVERY_S,
    RESUME_FILE,
    Checkpointer,
    Progress,
    load_resume,
)
from lw_refinenet_ros.training.epoch_loop import Budget


def _checkpointer(out: Path, model: torch.nn.Module, enabled: bool = True) -> Checkpointer:
    return Checkpointer(out, model, arch='mbv2', class_names=['bg', 'part'],
                        colors=[(0, 0, 0), (255, 0, 0)], metadata={'dataset': 'd'},
                        half=False, enabled=enabled)


@pytest.mark.slow  # the curves plot imports matplotlib
def test_last_and_resume_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = build_model('mbv2', 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    scaler = torch.amp.GradScaler('cuda', enabled=False)
    progress = Progress(epoch=3, batch_in_epoch=2, global_step=17, best_miou=0.5, stage=1,
                        history={'epochs': [{'epoch': 3, 'step': 15, 'loss': 0.6}], 'val': [],
                                 'steps': [[10, 0.7]]})
    _checkpointer(tmp_path, model).save_last(progress, optimizer, scaler, final=True)
    assert {p.name for p in tmp_path.iterdir()} == {'last.pt', RESUME_FILE, 'history.json',
                                                    'curves.png'}  # no temporary left
    info = read_checkpoint(tmp_path / 'last.pt')
    assert info.class_names == ('bg', 'part') and info.metadata['global_step'] == 17
    assert info.metadata['epoch'] == 3 and info.metadata['dataset'] == 'd'

    fresh = build_model('mbv2', 2)
    resume = load_resume(tmp_path, fresh)
    assert resume.progress == progress
    assert resume.optimizer is not None and resume.optimizer['param_groups'][0]['lr'] == 0.1
    key = 'segm.weight'
    assert torch.equal(fresh.state_dict()[key], model.state_dict()[key])


def test_best_carries_the_validation_score_and_other_ranks_write_nothing(
        tmp_path: Path) -> None:
    model = build_model('mbv2', 2)
    _checkpointer(tmp_path, model).save_best(Progress(global_step=5), epoch=2, val_miou=0.75)
    assert read_checkpoint(tmp_path / 'best.pt').metadata['val_miou'] == 0.75
    other = tmp_path / 'rank1'
    other.mkdir()
    quiet = _checkpointer(other, model, enabled=False)
    quiet.save_best(Progress(), epoch=1)
    quiet.save_last(Progress(), None, torch.amp.GradScaler('cuda', enabled=False))
    assert not list(other.iterdir())


def test_curves_are_redrawn_at_most_every_half_minute_and_at_the_end(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    drawn: list[float] = []
    clock = [1000.0]
    monkeypatch.setattr(checkpointer_module, 'plot_history',
                        lambda history, path: drawn.append(clock[0]))
    monkeypatch.setattr(checkpointer_module.time, 'monotonic', lambda: clock[0])
    writer = _checkpointer(tmp_path, build_model('mbv2', 2))
    scaler = torch.amp.GradScaler('cuda', enabled=False)
    for _ in range(5):  # five short epochs
        clock[0] += 4.0
        writer.save_last(Progress(), None, scaler)
    clock[0] += PLOT_EVERY_S
    writer.save_last(Progress(), None, scaler)  # half a minute later: redrawn
    writer.save_last(Progress(), None, scaler, final=True)  # the run's end: always
    assert drawn == [1000.0 + 20.0 + PLOT_EVERY_S] * 2
    assert (tmp_path / 'history.json').is_file()


def test_resume_without_a_run_says_which_folder(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match='same --out folder'):
        load_resume(tmp_path, build_model('mbv2', 2))


def test_budget_by_steps_and_by_time() -> None:
    cpu = torch.device('cpu')
    steps = Budget(max_steps=3, time_limit_s=None, started=0.0, distributed=False, device=cpu)
    assert not steps.exhausted(2) and steps.exhausted(3)
    clock = Budget(max_steps=None, time_limit_s=0.0, started=0.0, distributed=False, device=cpu)
    assert clock.exhausted(0)
    endless = Budget(max_steps=None, time_limit_s=None, started=0.0, distributed=False,
                     device=cpu)
    assert not endless.exhausted(10**9)


# --------------------------------------------------------------------------- model card


def test_the_model_card_round_trips_into_segment_and_the_engine(tmp_path: Path) -> None:
    """A model trained at 96x72 runs 2x larger frames at 96 px unless max_side is set."""
    from lw_refinenet_ros.cli import build_parser
    from lw_refinenet_ros.engine.config import engine_config_from_args
    from lw_refinenet_ros.model.checkpoint import engine_defaults, model_card, val_scores
    from lw_refinenet_ros.segmenter import Segmenter

    metadata = {'dataset': 'd', **model_card(input_size=(96, 72), train_scale=(0.8, 1.25))}
    checkpointer = Checkpointer(tmp_path, build_model('mbv2', 2), arch='mbv2',
                                class_names=['bg', 'part'], colors=[(0, 0, 0), (255, 0, 0)],
                                metadata=metadata, half=True, enabled=True)
    scores = val_scores(0.8, [0.9, 0.7], ['bg', 'part'], 0.95, 12)
    checkpointer.save_best(Progress(global_step=40), 5, val_miou=0.8, scores=scores)
    info = read_checkpoint(tmp_path / 'best.pt')
    assert info.class_names == ('bg', 'part') and info.colors == ((0, 0, 0), (255, 0, 0))
    assert info.metadata['preprocessing']['mean'] == pytest.approx([0.485, 0.456, 0.406])
    assert info.metadata['input_size'] == [96, 72]
    assert info.metadata['train_scale'] == [0.8, 1.25]
    assert info.metadata['val_scores']['iou'] == {'bg': 0.9, 'part': 0.7}
    assert engine_defaults(info.metadata, max_side=None) == {'max_side': 96}
    assert engine_defaults(info.metadata, max_side=0) == {}  # the user's 0 = native stays
    weights = str(tmp_path / 'best.pt')
    for flags, expected in (([], 96), (['--max-side', '0'], 0), (['--max-side', '200'], 200)):
        args = build_parser().parse_args(['segment', 'x.png', '--out', 'o', '--weights',
                                          weights, *flags])
        # As `segment` and `eval` build it (the first load also writes the file's card).
        segmenter = Segmenter.load(args.weights, engine=engine_config_from_args(
            args, cache_dir=str(tmp_path / 'cache')), lazy=True,
            trained_scale=args.max_side is None)
        assert segmenter.engine_config.max_side == expected


def test_the_packaged_model_runs_at_the_size_it_was_trained_at() -> None:
    from lw_refinenet_ros.model import DEFAULT_MODEL_PATH
    from lw_refinenet_ros.model.checkpoint import default_max_side

    # Trained on 320x240 conveyor frames rendered on the fly: the size comes from its config.
    assert default_max_side(read_checkpoint(DEFAULT_MODEL_PATH).metadata) == 320
    assert default_max_side({}) == 0


def test_a_model_trained_with_other_normalisation_is_refused(tmp_path: Path) -> None:
    from lw_refinenet_ros.errors import CheckpointError
    from lw_refinenet_ros.model import save_checkpoint

    save_checkpoint(tmp_path / 'm.pt', build_model('mbv2', 2), arch='mbv2',
                    metadata={'preprocessing': {'mean': [0.5, 0.5, 0.5], 'std': [0.5] * 3}})
    with pytest.raises(CheckpointError, match=r'trained with mean \[0.5, 0.5, 0.5\]'):
        read_checkpoint(tmp_path / 'm.pt')
