"""Checkpoint I/O: formats accepted, strictness, refusal of unsafe or damaged files, ImageNet init.

No real weights are available (the release links are dead and CI is offline), so every file is
generated here: reference-style raw state dicts, wrapped training checkpoints, and fake
torchvision ImageNet files built from small re-implementations of torchvision's layouts.
"""

from __future__ import annotations

import functools
import json
import os
import pathlib
import pickle
from typing import Any

import pytest
import torch
from torch import nn

from lw_refinenet_ros.errors import CheckpointError, ConfigError
from lw_refinenet_ros.model import (
    ARCHES,
    CHECKPOINT_FORMAT,
    build_model,
    detect_arch,
    init_encoder_from_torchvision,
    init_from_checkpoint,
    load_model,
    load_weights,
    read_checkpoint,
    save_checkpoint,
    torchvision_mbv2_key_map,
)
from lw_refinenet_ros.model import weights as weights_module
from lw_refinenet_ros.model.encoders import MBV2_STAGES, ResNetEncoder

MANIFEST_PATH = pathlib.Path(__file__).parent / 'data' / 'lwrf_state_dict_layout.json'
K = 5


@functools.lru_cache(maxsize=None)
def _manifest() -> dict:
    return json.loads(MANIFEST_PATH.read_text())


def _randomize(model: nn.Module, seed: int) -> nn.Module:
    """Give every parameter and BN statistic distinctive values (so wrong loads show)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if name.endswith('num_batches_tracked'):
                tensor.fill_(seed + 1)
            elif name.endswith('running_var'):
                tensor.copy_(torch.rand(tensor.shape, generator=generator) + 0.5)
            else:
                tensor.copy_(torch.randn(tensor.shape, generator=generator) * 0.05)
    return model


@pytest.fixture(scope='module')
def trained() -> nn.Module:
    return _randomize(build_model('mbv2', K), seed=1).eval()


@pytest.fixture(scope='module')
def probe() -> torch.Tensor:
    return torch.randn(1, 3, 40, 56, generator=torch.Generator().manual_seed(5))


def _same_weights(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return list(sa) == list(sb) and all(torch.equal(sa[k], sb[k]) for k in sa)


def _raw(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


# --------------------------------------------------------------------------- formats


def test_release_style_raw_state_dict_loads_exactly(trained, tmp_path) -> None:
    path = tmp_path / 'rf_lwmbv2_voc.pth.tar'
    torch.save(_raw(trained), path)
    info = read_checkpoint(path)
    assert (info.arch, info.num_classes) == ('mbv2', K)
    assert info.class_names is None and info.colors is None
    fresh = build_model('mbv2', K)
    load_weights(fresh, path)
    assert _same_weights(fresh, trained)


@pytest.mark.parametrize('wrapper, prefix, extra', [
    ('model', 'module.', {'epoch': 12, 'best_val': 0.7, 'optimisers': [{'lr': 0.1}]}),
    ('state_dict', '', {'epoch': 3}),
    ('segmenter', 'module.', {'epoch_start': 100, 'best_val': 0.5}),
    ('state_dict', '_orig_mod.', {}),
])
def test_wrapped_and_prefixed_training_checkpoints_load(trained, tmp_path, wrapper, prefix,
                                                        extra) -> None:
    path = tmp_path / 'train.pth'
    torch.save({wrapper: {prefix + k: v for k, v in _raw(trained).items()}, **extra}, path)
    info = read_checkpoint(path)
    assert all(not k.startswith(('module.', '_orig_mod.')) for k in info.state_dict)
    fresh = build_model('mbv2', K)
    load_weights(fresh, path)
    assert _same_weights(fresh, trained)
    if 'epoch' in extra:
        assert info.metadata['epoch'] == extra['epoch']


def test_files_without_num_batches_tracked_load(trained, tmp_path) -> None:
    path = tmp_path / 'old.pth'
    torch.save({k: v for k, v in _raw(trained).items()
                if not k.endswith('num_batches_tracked')}, path)
    fresh = build_model('mbv2', K)
    load_weights(fresh, path)
    for key, value in trained.state_dict().items():
        if not key.endswith('num_batches_tracked'):
            assert torch.equal(fresh.state_dict()[key], value), key


def test_a_state_dict_mapping_is_accepted_as_source(trained) -> None:
    fresh = build_model('mbv2', K)
    load_weights(fresh, {'module.' + k: v for k, v in trained.state_dict().items()})
    assert _same_weights(fresh, trained)


def test_project_format_round_trip_with_names_colours_metadata(trained, probe,
                                                               tmp_path) -> None:
    path = tmp_path / 'sub' / 'model.pt'
    names = ['background', 'box', 'belt', 'hand', 'tool']
    colors = [(0, 0, 0), (128, 0, 0), (0, 128, 0), (128, 128, 0), (0, 0, 128)]
    save_checkpoint(path, trained, arch='mbv2', class_names=names, colors=colors,
                    metadata={'epoch': 7, 'miou': 0.61, 'notes': ['a', 'b'], 'cfg': {'lr': 1}})
    raw = torch.load(path, weights_only=True)
    assert raw['format'] == CHECKPOINT_FORMAT and raw['arch'] == 'mbv2'
    assert raw['num_classes'] == K
    model, info = load_model(path)
    assert not model.training
    assert info.class_names == tuple(names) and info.colors == tuple(colors)
    assert info.metadata == {'epoch': 7, 'miou': 0.61, 'notes': ['a', 'b'], 'cfg': {'lr': 1}}
    assert _same_weights(model, trained)
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no temporary left


def test_half_precision_files_are_smaller_and_load_back_as_float32(trained, probe,
                                                                   tmp_path) -> None:
    full, half = tmp_path / 'full.pt', tmp_path / 'half.pt'
    save_checkpoint(full, trained, arch='mbv2')
    save_checkpoint(half, trained, arch='mbv2', half=True)
    assert half.stat().st_size < 0.6 * full.stat().st_size
    stored = torch.load(half, weights_only=True)['state_dict']
    assert stored['segm.weight'].dtype == torch.float16
    assert stored['layer1.1.running_var'].dtype == torch.float32  # BN statistics stay exact
    info = read_checkpoint(half)
    assert all(v.dtype == torch.float32 for v in info.state_dict.values()
               if v.is_floating_point())
    model, _ = load_model(half)
    assert all(p.dtype == torch.float32 for p in model.parameters())
    with torch.no_grad():
        torch.testing.assert_close(model(probe), trained(probe), rtol=1e-2, atol=1e-2)


def test_save_checkpoint_validates_its_arguments(trained, tmp_path) -> None:
    path = tmp_path / 'x.pt'
    with pytest.raises(ConfigError, match='resnet50'):
        save_checkpoint(path, trained, arch='resnet50')
    with pytest.raises(ConfigError, match='class names'):
        save_checkpoint(path, trained, arch='mbv2', class_names=['a'])
    with pytest.raises(ConfigError, match='colors'):
        save_checkpoint(path, trained, arch='mbv2', colors=[(0, 0, 0)] * K + [(1, 1, 1)])
    with pytest.raises(ConfigError, match='metadata'):
        save_checkpoint(path, trained, arch='mbv2', metadata={'device': torch.device('cpu')})
    assert not path.exists()


# --------------------------------------------------------------------------- strictness


def _expect_refusal(model: nn.Module, source: Any, *fragments: str) -> str:
    before = _raw(model)
    with pytest.raises(CheckpointError) as excinfo:
        load_weights(model, source)
    message = str(excinfo.value)
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before), 'partial load'
    return message


def test_missing_keys_are_refused_and_named(trained) -> None:
    state = _raw(trained)
    del state['conv_adapt2.weight'], state['layer3.1.output.1.1.running_var']
    _expect_refusal(build_model('mbv2', K), state, '2 missing', 'conv_adapt2.weight',
                    'layer3.1.output.1.1.running_var', 'nothing was loaded')


def test_unexpected_keys_are_refused_and_named(trained) -> None:
    state = _raw(trained)
    state['aux_head.weight'] = torch.zeros(3)
    _expect_refusal(build_model('mbv2', K), state, '1 unexpected', 'aux_head.weight')


def test_wrong_shapes_are_refused_with_both_shapes(trained) -> None:
    state = _raw(trained)
    state['conv8.weight'] = torch.zeros(256, 320, 3, 3)
    _expect_refusal(build_model('mbv2', K), state, 'conv8.weight', '(256, 320, 3, 3)',
                    '(256, 320, 1, 1)')


def test_class_count_mismatch_is_explained(trained, tmp_path) -> None:
    message = _expect_refusal(build_model('mbv2', 21), _raw(trained), 'segm.weight',
                              'Class-count mismatch')
    assert f'num_classes={K}' in message
    path = tmp_path / 'k5.pt'
    save_checkpoint(path, trained, arch='mbv2')
    with pytest.raises(CheckpointError, match='Class-count mismatch'):
        load_model(path, num_classes=21)
    with pytest.raises(CheckpointError, match='resnet50'):
        load_model(path, arch='resnet50')
    with pytest.raises(ConfigError):
        load_model(path, arch='vgg16')
    model, info = load_model(path, arch='mbv2', num_classes=K)
    assert info.num_classes == K


def test_architecture_mismatch_is_explained(trained) -> None:
    _expect_refusal(build_model('resnet50', K), _raw(trained), 'missing', 'unexpected',
                    'The weights are mbv2')


def test_nan_weights_are_refused(trained) -> None:
    state = _raw(trained)
    state['crp1.0.2_outvar_dimred.weight'][0, 0, 0, 0] = float('nan')
    _expect_refusal(build_model('mbv2', K), state, 'NaN', 'crp1.0.2_outvar_dimred.weight')


def test_inconsistent_or_future_project_files_are_refused(trained, tmp_path) -> None:
    path = tmp_path / 'liar.pt'
    save_checkpoint(path, trained, arch='mbv2')
    payload = torch.load(path, weights_only=True)
    payload['arch'] = 'resnet50'
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match='inconsistent'):
        read_checkpoint(path)
    payload['arch'], payload['format'] = 'mbv2', 'lw_refinenet_ros/9'
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match='lw_refinenet_ros/9'):
        read_checkpoint(path)


def test_files_without_a_state_dict_are_refused(tmp_path) -> None:
    path = tmp_path / 'odd.pt'
    torch.save({'epoch': 3, 'weights': [1, 2]}, path)
    with pytest.raises(CheckpointError, match='No state dict found'):
        read_checkpoint(path)
    torch.save([torch.zeros(1)], path)
    with pytest.raises(CheckpointError, match='list'):
        read_checkpoint(path)


# --------------------------------------------------------------------------- unsafe files


class _RunsCode:
    """A pickle payload that would run a shell command when unpickled."""

    def __init__(self, marker: pathlib.Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f'touch {self.marker}',))


@pytest.mark.filterwarnings('ignore:Detected pickle protocol')
def test_pickles_that_would_run_code_are_refused(trained, tmp_path) -> None:
    marker = tmp_path / 'pwned'
    path = tmp_path / 'evil.pth'
    torch.save({'state_dict': _raw(trained), 'hook': _RunsCode(marker)}, path)
    attempts = [
        lambda: read_checkpoint(path),
        lambda: load_weights(build_model('mbv2', K), path),
        lambda: load_model(path),
        lambda: init_encoder_from_torchvision(build_model('mbv2', K), path),
    ]
    for attempt in attempts:
        with pytest.raises(CheckpointError) as excinfo:
            attempt()
        message = str(excinfo.value)
        assert 'Refusing to run code from' in message and str(path) in message
        assert 'If you trust' in message
    # Plain pickles (not torch.save zips) go through the same restricted unpickler.
    for protocol in (2, 5):
        plain = tmp_path / f'evil_protocol{protocol}.pkl'
        with open(plain, 'wb') as stream:
            pickle.dump({'state_dict': {}, 'hook': _RunsCode(marker)}, stream,
                        protocol=protocol)
        with pytest.raises(CheckpointError, match=str(plain)):
            read_checkpoint(plain)
    assert not marker.exists()


def test_truncated_empty_and_missing_files_are_refused(trained, tmp_path) -> None:
    good = tmp_path / 'good.pt'
    save_checkpoint(good, trained, arch='mbv2')
    data = good.read_bytes()
    cases = {'truncated.pt': data[: len(data) // 2], 'empty.pt': b'',
             'garbage.pt': b'not a checkpoint at all'}
    for name, content in cases.items():
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(CheckpointError, match='corrupt or truncated') as excinfo:
            read_checkpoint(path)
        assert str(path) in str(excinfo.value)
    with pytest.raises(CheckpointError, match='does not exist'):
        read_checkpoint(tmp_path / 'nope.pt')


def test_missing_default_model_says_how_to_get_one(monkeypatch, tmp_path) -> None:
    monkeypatch.setattr(weights_module, 'DEFAULT_MODEL_PATH', tmp_path / 'none.pt')
    with pytest.raises(CheckpointError, match='--weights'):
        load_model(None)


def test_the_packaged_default_model_loads() -> None:
    assert weights_module.DEFAULT_MODEL_PATH.is_file(), 'the packaged model is missing'
    model, info = load_model(None)
    assert info.arch == 'mbv2' and not model.training


# --------------------------------------------------------------------------- detection


def _meta_state(arch: str, num_classes: int = 21) -> dict[str, torch.Tensor]:
    # Shapes from the manifest on the meta device: no memory, any architecture instantly.
    state = {}
    for name, shape, _ in _manifest()[arch]['keys']:
        if name in ('segm.weight', 'clf_conv.weight', 'segm.bias', 'clf_conv.bias'):
            shape = [num_classes] + shape[1:]
        state[name] = torch.empty(shape, device='meta')
    return state


@pytest.mark.parametrize('arch', ARCHES)
@pytest.mark.parametrize('num_classes', [7, 21, 60])
def test_detect_arch_reads_the_architecture_and_class_count(arch: str,
                                                            num_classes: int) -> None:
    assert detect_arch(_meta_state(arch, num_classes)) == (arch, num_classes)
    wrapped = {'model': {'module.' + k: v for k, v in _meta_state(arch, num_classes).items()}}
    assert detect_arch(wrapped) == (arch, num_classes)


def test_detect_arch_refuses_unknown_layouts() -> None:
    with pytest.raises(CheckpointError, match='torchvision'):
        detect_arch({'fc.weight': torch.zeros(2, 2), 'conv1.weight': torch.zeros(1)})
    with pytest.raises(CheckpointError, match='Cannot tell'):
        detect_arch({'head.weight': torch.zeros(1)})
    state = {k: v for k, v in _meta_state('resnet50').items() if not k.startswith('layer3.5')}
    with pytest.raises(CheckpointError, match='5 layer3 blocks'):
        detect_arch(state)


# --------------------------------------------------------------------------- ImageNet init


def _fake_torchvision_resnet50() -> dict[str, torch.Tensor]:
    """torchvision's resnet50 layout is the encoder's keys plus fc; 2017 files lack counters."""
    encoder = _randomize(ResNetEncoder(50), seed=7)
    state = {k: v for k, v in encoder.state_dict().items()
             if not k.endswith('num_batches_tracked')}
    state['fc.weight'] = torch.randn(1000, 2048)
    state['fc.bias'] = torch.randn(1000)
    return state


def test_resnet_imagenet_file_fills_exactly_the_encoder(tmp_path) -> None:
    tv = _fake_torchvision_resnet50()
    path = tmp_path / 'resnet50-19c8e357.pth'
    torch.save(tv, path)
    model = build_model('resnet50', K)
    decoder_before = {k: v.clone() for k, v in model.state_dict().items()
                      if not model.is_encoder_key(k)}
    init_encoder_from_torchvision(model, path)
    state = model.state_dict()
    for key in model.encoder_state_keys():
        if not key.endswith('num_batches_tracked'):
            assert torch.equal(state[key], tv[key]), key
    assert all(torch.equal(state[k], v) for k, v in decoder_before.items())
    assert set(tv) - set(state) == {'fc.weight', 'fc.bias'}


def test_resnet_imagenet_file_must_differ_only_by_fc() -> None:
    model = build_model('resnet50', K)
    extra = _fake_torchvision_resnet50()
    extra['avgpool_extra.weight'] = torch.zeros(1)
    with pytest.raises(CheckpointError, match='avgpool_extra.weight'):
        init_encoder_from_torchvision(model, extra)
    no_fc = _fake_torchvision_resnet50()
    del no_fc['fc.bias']
    with pytest.raises(CheckpointError, match='exactly fc.weight and fc.bias'):
        init_encoder_from_torchvision(model, no_fc)
    missing = _fake_torchvision_resnet50()
    del missing['layer4.2.bn3.running_mean']
    with pytest.raises(CheckpointError, match='layer4.2.bn3.running_mean'):
        init_encoder_from_torchvision(model, missing)
    wrong = _fake_torchvision_resnet50()
    wrong['conv1.weight'] = torch.zeros(64, 3, 3, 3)
    with pytest.raises(CheckpointError, match='conv1.weight'):
        init_encoder_from_torchvision(model, wrong)


class _TvConvBNReLU6(nn.Sequential):
    """torchvision's Conv2dNormActivation: keys .0 (conv) and .1 (bn)."""

    def __init__(self, cin: int, cout: int, kernel: int = 3, stride: int = 1,
                 groups: int = 1) -> None:
        super().__init__(nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups,
                                   bias=False), nn.BatchNorm2d(cout), nn.ReLU6())


class _TvInvertedResidual(nn.Module):
    """torchvision's block: no expansion conv when t == 1."""

    def __init__(self, cin: int, cout: int, stride: int, t: int) -> None:
        super().__init__()
        hidden = cin * t
        layers: list[nn.Module] = [] if t == 1 else [_TvConvBNReLU6(cin, hidden, kernel=1)]
        layers += [_TvConvBNReLU6(hidden, hidden, stride=stride, groups=hidden),
                   nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout)]
        self.conv = nn.Sequential(*layers)
        self.use_res_connect = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


class _TvMobileNetV2(nn.Module):
    """A small independent re-implementation of torchvision's MobileNetV2 (width 1.0)."""

    def __init__(self) -> None:
        super().__init__()
        settings = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                    (6, 160, 3, 2), (6, 320, 1, 1)]
        features: list[nn.Module] = [_TvConvBNReLU6(3, 32, stride=2)]
        cin = 32
        for t, c, n, s in settings:
            for i in range(n):
                features.append(_TvInvertedResidual(cin, c, s if i == 0 else 1, t))
                cin = c
        features.append(_TvConvBNReLU6(cin, 1280, kernel=1))
        self.features = nn.Sequential(*features)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(1280, 1000))

    def taps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Outputs after features 3, 6, 10, 13, 16, 17 (= the LW-RefineNet l3..l8)."""
        out = []
        for index, block in enumerate(self.features[:18]):
            x = block(x)
            if index in (3, 6, 10, 13, 16, 17):
                out.append(x)
        return out


def test_mbv2_key_map_covers_the_encoder_exactly() -> None:
    table = torchvision_mbv2_key_map()
    tv = _TvMobileNetV2().state_dict()
    model = build_model('mbv2', K)
    ours = model.state_dict()
    mapped_sources = [k for k in tv if not k.startswith(('features.18.', 'classifier.'))]
    assert sorted(table) == sorted(mapped_sources)
    assert len(set(table.values())) == len(table)  # one-to-one
    for src, dst in table.items():
        assert tv[src].shape == ours[dst].shape, (src, dst)
    identity = {k for k in ours if k.startswith('layer2.0.output.0.')}
    assert set(table.values()) | identity == set(model.encoder_state_keys())
    assert sum(1 for _, _, n, _ in MBV2_STAGES for _ in range(n)) == 17
    assert table['features.1.conv.0.0.weight'] == 'layer2.0.output.1.0.weight'
    assert table['features.17.conv.3.running_var'] == 'layer8.0.output.2.1.running_var'


def test_mbv2_imagenet_init_reproduces_torchvision_features() -> None:
    tv = _randomize(_TvMobileNetV2(), seed=11).eval()
    model = build_model('mbv2', K)
    decoder_before = {k: v.clone() for k, v in model.state_dict().items()
                      if not model.is_encoder_key(k)}
    init_encoder_from_torchvision(model, tv.state_dict())
    model.eval()
    x = torch.randn(2, 3, 45, 61, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected, got = tv.taps(x), model.encode(x)
    for index, (a, b) in enumerate(zip(got, expected)):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5, msg=f'tap {index}')
    # The extra expansion is an exact identity on ReLU6 outputs.
    extra = model.layer2[0].output[0]
    y = torch.rand(1, 32, 7, 9) * 6
    with torch.no_grad():
        assert torch.equal(extra(y), y)
    state = model.state_dict()
    assert torch.equal(state['layer2.0.output.0.1.running_var'], torch.full((32,), 1 - 1e-5))
    assert all(torch.equal(state[k], v) for k, v in decoder_before.items())


def test_mbv2_imagenet_init_refuses_foreign_or_incomplete_files() -> None:
    model = build_model('mbv2', K)
    tv = _TvMobileNetV2().state_dict()
    bad = dict(tv)
    bad['features.19.weight'] = torch.zeros(1)
    with pytest.raises(CheckpointError, match='features.19.weight'):
        init_encoder_from_torchvision(model, bad)
    incomplete = dict(tv)
    del incomplete['features.5.conv.1.0.weight']
    with pytest.raises(CheckpointError, match=r'layer4\.1\.output\.1\.0\.weight'):
        init_encoder_from_torchvision(model, incomplete)
    with pytest.raises(CheckpointError, match='torchvision ResNet'):
        init_encoder_from_torchvision(build_model('resnet50', K), tv)


# --------------------------------------------------------------------------- fine-tuning


def test_fine_tuning_from_a_same_class_model_loads_everything(trained, tmp_path) -> None:
    path = tmp_path / 'trained.pt'
    save_checkpoint(path, trained, arch='mbv2')
    model = build_model('mbv2', K)
    assert init_from_checkpoint(model, path) == ()
    assert _same_weights(model, trained)


def test_fine_tuning_for_other_classes_keeps_only_a_fresh_classifier(trained,
                                                                      tmp_path) -> None:
    path = tmp_path / 'trained.pt'
    save_checkpoint(path, trained, arch='mbv2')
    model = build_model('mbv2', K + 2)
    fresh = _raw(model)
    skipped = init_from_checkpoint(model, path)
    assert skipped == ('segm.weight', 'segm.bias')
    loaded, source = model.state_dict(), trained.state_dict()
    for key, value in loaded.items():
        if key in skipped:
            assert torch.equal(value, fresh[key]) and value.shape[0] == K + 2, key
        else:
            assert torch.equal(value, source[key]), key


def test_fine_tuning_refuses_another_architecture_or_a_broken_file(trained, tmp_path) -> None:
    path = tmp_path / 'trained.pt'
    save_checkpoint(path, trained, arch='mbv2')
    with pytest.raises(CheckpointError, match='--arch mbv2'):
        init_from_checkpoint(build_model('resnet50', K), path)
    state = _raw(trained)
    del state['layer3.0.output.0.0.weight']
    torch.save(state, tmp_path / 'broken.pt')
    model = build_model('mbv2', K + 1)
    before = _raw(model)
    with pytest.raises(CheckpointError, match='layer3.0.output.0.0.weight'):
        init_from_checkpoint(model, tmp_path / 'broken.pt')
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


# --------------------------------------------------------------------------- ImageNet fetch


def _served_file(folder, content: bytes, digest_prefix: str | None = None):
    import hashlib

    prefix = digest_prefix or hashlib.sha256(content).hexdigest()[:8]
    path = folder / f'mobilenet_v2-{prefix}.pth'
    path.write_bytes(content)
    return path, path.as_uri()


def test_imagenet_weights_are_fetched_once_and_hash_checked(tmp_path) -> None:
    from lw_refinenet_ros.model.pretrained import imagenet_weights

    (tmp_path / 'server').mkdir()
    source, url = _served_file(tmp_path / 'server', b'weights of an encoder')
    cache = tmp_path / 'cache'
    fetched = imagenet_weights('mbv2', url=url, cache_dir=cache)
    assert fetched == cache / source.name and fetched.read_bytes() == source.read_bytes()
    source.unlink()  # served no more: the cached copy is used
    assert imagenet_weights('mbv2', url=url, cache_dir=cache) == fetched
    fetched.write_bytes(b'damaged')
    with pytest.raises(CheckpointError, match='damaged or another one; delete it'):
        imagenet_weights('mbv2', url=url, cache_dir=cache)


def test_a_download_with_the_wrong_hash_is_refused_and_not_kept(tmp_path) -> None:
    from lw_refinenet_ros.model.pretrained import imagenet_weights

    (tmp_path / 'server').mkdir()
    _, url = _served_file(tmp_path / 'server', b'tampered', digest_prefix='0123abcd')
    with pytest.raises(CheckpointError, match='expected 0123abcd.*not kept'):
        imagenet_weights('mbv2', url=url, cache_dir=tmp_path / 'cache')
    assert list((tmp_path / 'cache').iterdir()) == []


def test_offline_the_error_says_which_url_to_fetch_and_where_to_put_it(tmp_path) -> None:
    from lw_refinenet_ros.model.pretrained import IMAGENET_URLS, imagenet_weights

    url = (tmp_path / 'nowhere' / 'resnet50-19c8e357.pth').as_uri()
    with pytest.raises(CheckpointError) as error:
        imagenet_weights('resnet50', url=url, cache_dir=tmp_path / 'cache')
    message = str(error.value)
    assert url in message and str(tmp_path / 'cache' / 'resnet50-19c8e357.pth') in message
    assert set(IMAGENET_URLS) == {'mbv2', 'resnet50', 'resnet101', 'resnet152'}
