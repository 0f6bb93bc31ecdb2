"""The learned part-boundary output: its shape, its target, its loss, its checkpoints and how
the engine hands it on (tiny models and images; no packaged model needed)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from lw_refinenet_ros.engine import EngineConfig, InferenceEngine
from lw_refinenet_ros.engine.frames import boundary_probability, check_logits
from lw_refinenet_ros.errors import CheckpointError, ConfigError, EngineError
from lw_refinenet_ros.model import build_model
from lw_refinenet_ros.model.boundary import BOUNDARY_FLAG, BoundaryHead
from lw_refinenet_ros.model.checkpoint import save_checkpoint
from lw_refinenet_ros.model.pretrained import init_from_checkpoint
from lw_refinenet_ros.model.weights import load_model
from lw_refinenet_ros.training.boundary import BoundaryTrainConfig, train_boundary, train_head
from lw_refinenet_ros.training.boundary_target import boundary_target, seam_pixels

K = 3
BOLT, NUT = 1, 2


def touching_bolts() -> tuple[np.ndarray, np.ndarray]:
    """Two bolts side by side (columns 8..15 and 16..23 of rows 8..23), a nut apart."""
    labels = np.zeros((32, 40), np.uint8)
    instances = np.zeros((32, 40), np.uint16)
    labels[8:24, 8:24] = BOLT
    instances[8:24, 8:16] = 1
    instances[8:24, 16:24] = 2
    labels[8:24, 30:38] = NUT
    instances[8:24, 30:38] = 3
    return labels, instances


@pytest.fixture(scope='module')
def models() -> tuple[torch.nn.Module, torch.nn.Module]:
    """The same weights without and with a (randomised) boundary head."""
    torch.manual_seed(0)
    plain = build_model('mbv2', K).eval()
    with_head = build_model('mbv2', K, boundary=True).eval()
    state = with_head.state_dict()
    state.update(plain.state_dict())
    with_head.load_state_dict(state)
    torch.nn.init.normal_(with_head.boundary.out.weight, std=0.5)
    return plain, with_head


def test_the_boundary_is_one_more_channel_and_the_class_logits_do_not_change(models) -> None:
    plain, with_head = models
    x = torch.randn(1, 3, 50, 70)
    with torch.no_grad():
        logits, extended = plain(x), with_head(x)
    assert logits.shape == (1, K, 13, 18)
    assert extended.shape == (1, K + 1, 13, 18)
    assert torch.equal(extended[:, :K], logits)
    assert with_head.output_channels == K + 1 and with_head.boundary_channel
    assert plain.output_channels == K and not plain.boundary_channel


def test_an_untrained_head_sees_no_seam_anywhere() -> None:
    head = BoundaryHead()
    with torch.no_grad():
        probability = torch.sigmoid(head(torch.randn(2, 256, 6, 7)))
    assert probability.shape == (2, 1, 6, 7)
    assert float(probability.max()) < 0.02


def test_the_target_marks_the_seam_between_two_parts_of_one_class_only() -> None:
    labels, instances = touching_bolts()
    seams = seam_pixels(labels, instances, radius=2)
    # Two columns on each side of the contact between the bolts; nothing at the nut, the
    # belt or the bolts' outer edges.
    assert set(np.unique(np.nonzero(seams)[1])) == {14, 15, 16, 17}
    assert seams[8:24, 14:18].all() and int(seams.sum()) == 16 * 4
    target = boundary_target(labels, instances, radius=2)
    assert target.shape == (8, 10) and target.dtype == np.float32
    # Pixels 14..17 lie in stride-4 cells 3 and 4, rows 8..23 in cells 2..5.
    expected = np.zeros((8, 10), np.float32)
    expected[2:6, 3:5] = 1
    np.testing.assert_array_equal(target, expected)


def test_parts_of_different_classes_touching_are_no_seam() -> None:
    labels, instances = touching_bolts()
    labels[8:24, 16:24] = NUT  # the second "bolt" is a nut: the labels separate them
    assert not seam_pixels(labels, instances).any()
    with pytest.raises(ValueError, match='same'):
        seam_pixels(labels, instances[:, :10])


def test_the_loss_falls_when_the_head_learns_a_hand_made_seam() -> None:
    labels, instances = touching_bolts()
    target = torch.from_numpy(boundary_target(labels, instances))[None, None]
    torch.manual_seed(0)
    # Features that carry the seam in one channel (what the decoder would have to show).
    features = torch.randn(4, 256, 8, 10) * 0.1
    features[:, 7] += 3 * target[0, 0]
    head = BoundaryHead()
    config = BoundaryTrainConfig(epochs=30, batch=4, lr=1e-2, pos_weight=4.0)
    losses = train_head(head, features.half(), target.repeat(4, 1, 1, 1), config,
                        progress=lambda _: None)
    assert losses[-1] < 0.5 * losses[0]
    with torch.no_grad():
        probability = torch.sigmoid(head(features[:1]))[0, 0]
    assert float(probability[target[0, 0] > 0].min()) > float(
        probability[target[0, 0] == 0].max())


def _save(tmp_path, model, metadata) -> str:
    path = tmp_path / 'model.pt'
    save_checkpoint(path, model, arch='mbv2', metadata=metadata)
    return str(path)


def test_a_checkpoint_with_the_flag_and_the_head_loads_with_the_head(models, tmp_path) -> None:
    plain, with_head = models
    loaded, info = load_model(_save(tmp_path, with_head, {BOUNDARY_FLAG: True}))
    assert loaded.boundary_channel and info.metadata[BOUNDARY_FLAG] is True
    x = torch.randn(1, 3, 32, 40)
    with torch.no_grad():
        assert torch.equal(loaded(x), with_head(x))


def test_a_checkpoint_without_the_head_loads_as_before(models, tmp_path) -> None:
    plain, _ = models
    loaded, _ = load_model(_save(tmp_path, plain, {}))
    assert not loaded.boundary_channel
    assert list(loaded.state_dict()) == list(plain.state_dict())


@pytest.mark.parametrize('flag, with_keys, message', [
    ('yes', True, 'must be true or false'),
    (True, False, r'has no boundary\.\* weights'),
    (False, True, 'does not declare'),
])
def test_a_malformed_boundary_flag_is_refused_with_the_reason(models, tmp_path, flag,
                                                              with_keys, message) -> None:
    plain, with_head = models
    path = _save(tmp_path, with_head if with_keys else plain, {BOUNDARY_FLAG: flag})
    with pytest.raises(CheckpointError, match=message):
        load_model(path)


def test_the_engine_hands_on_the_boundary_and_keeps_the_labels(models) -> None:
    plain, with_head = models
    image = np.random.default_rng(0).integers(0, 255, (36, 52, 3), np.uint8)
    config = EngineConfig(device='cpu', backend='torch', precision='fp32', warmup_iters=0)
    before = InferenceEngine(plain, config)(image)
    after = InferenceEngine(with_head, config)(image)
    assert before.boundary is None
    assert after.boundary.shape == (9, 13) and after.boundary.dtype == np.float32
    assert 0.0 <= float(after.boundary.min()) and float(after.boundary.max()) <= 1.0
    np.testing.assert_array_equal(after.labels, before.labels)
    np.testing.assert_array_equal(after.confidence, before.confidence)


def test_the_engine_refuses_logits_with_more_than_one_extra_channel() -> None:
    check_logits(np.zeros((1, K + 1, 9, 13), np.float32), 1, K, (36, 52))
    with pytest.raises(EngineError, match='expected'):
        check_logits(np.zeros((1, K + 2, 9, 13), np.float32), 1, K, (36, 52))
    assert boundary_probability(np.zeros((K, 9, 13), np.float32), K) is None
    far = np.full((K + 1, 2, 2), -1e4, np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter('error')  # no float overflow on a far negative logit
        assert float(boundary_probability(far, K).max()) < 1e-20


def test_fine_tuning_the_classes_from_a_checkpoint_with_the_head_leaves_the_head_out(
        models, tmp_path) -> None:
    plain, with_head = models
    path = _save(tmp_path, with_head, {BOUNDARY_FLAG: True})
    fresh = build_model('mbv2', K)
    assert init_from_checkpoint(fresh, path) == ()
    assert fresh.boundary is None
    for key, value in plain.state_dict().items():
        assert torch.equal(fresh.state_dict()[key], value), key


def test_train_boundary_adds_a_loadable_head_and_keeps_the_class_weights(models,
                                                                         tmp_path) -> None:
    plain, _ = models
    start = _save(tmp_path, plain, {'note': 'kept'})
    out = tmp_path / 'with_head.pt'
    config = BoundaryTrainConfig(weights=start, out=str(out), seeds=(4700,), videos=1,
                                 frames=2, frame_step=2, size=(64, 48), epochs=1, batch=2)
    report = train_boundary(config, progress=lambda _: None)
    assert report.frames == 2 and len(report.losses) == 1
    model, info = load_model(str(out))
    assert model.boundary_channel and info.metadata['note'] == 'kept'
    assert info.metadata['boundary_training']['kept_frames'] == 2
    for key, value in plain.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key


def test_train_boundary_refuses_bad_settings_before_any_work(tmp_path) -> None:
    from lw_refinenet_ros.cli import build_parser
    from lw_refinenet_ros.cli.train_boundary import build_config

    with pytest.raises(ConfigError, match='epochs'):
        build_config(build_parser().parse_args(['train-boundary', '--epochs', '0']))
    path = tmp_path / 'model.pt'
    with pytest.raises(ConfigError, match='overwrite its starting checkpoint'):
        train_boundary(BoundaryTrainConfig(weights=str(path), out=str(path)))
