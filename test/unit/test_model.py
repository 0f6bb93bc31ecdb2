"""Model builders: golden parameter counts, reference key layout, output sizes, forward math.

The layout manifest (test/unit/data/lwrf_state_dict_layout.json) was generated from the
reference implementation (docs/architecture.md §2).
"""

from __future__ import annotations

import functools
import json
import math
import pathlib

import pytest
import torch
from torch import nn
import torch.nn.functional as F

from lw_refinenet_ros.errors import ConfigError
from lw_refinenet_ros.model import ARCHES, LWRefineNet, build_model, fold_batchnorm

MANIFEST_PATH = pathlib.Path(__file__).parent / 'data' / 'lwrf_state_dict_layout.json'
GOLDEN_PARAMS = {'mbv2': 3_284_565, 'resnet50': 27_357_525, 'resnet101': 46_349_653,
                 'resnet152': 61_993_301}
PARAMS_PER_CLASS = 3 * 3 * 256 + 1


@functools.lru_cache(maxsize=None)
def _manifest() -> dict:
    return json.loads(MANIFEST_PATH.read_text())


@functools.lru_cache(maxsize=None)
def _model21(arch: str) -> LWRefineNet:
    # Built once per session: resnet152 takes about a second on two cores.
    torch.manual_seed(0)
    return build_model(arch, 21)


def _randomize_bn(model: nn.Module, seed: int = 0) -> None:
    # Fresh BN (mean 0, var 1) hides eps and folding errors; make the statistics non-trivial.
    generator = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            c = module.num_features
            module.running_mean.copy_(torch.randn(c, generator=generator) * 0.1)
            module.running_var.copy_(torch.rand(c, generator=generator) * 0.5 + 0.5)
            with torch.no_grad():
                module.weight.copy_(torch.rand(c, generator=generator) * 0.5 + 0.75)
                module.bias.copy_(torch.randn(c, generator=generator) * 0.1)


@pytest.mark.parametrize('arch', ARCHES)
def test_parameter_count_is_the_reference_golden_value(arch: str) -> None:
    model = _model21(arch)
    assert sum(p.numel() for p in model.parameters()) == GOLDEN_PARAMS[arch]
    assert _manifest()[arch]['params'] == GOLDEN_PARAMS[arch]


@pytest.mark.parametrize('arch', ['mbv2', 'resnet50'])
@pytest.mark.parametrize('num_classes', [1, 7, 40])
def test_other_class_counts_change_only_the_classifier(arch: str, num_classes: int) -> None:
    model = build_model(arch, num_classes)
    expected = GOLDEN_PARAMS[arch] + (num_classes - 21) * PARAMS_PER_CLASS
    assert sum(p.numel() for p in model.parameters()) == expected
    assert model.num_classes == num_classes


@pytest.mark.parametrize('arch', ARCHES)
def test_state_dict_matches_the_reference_layout_key_for_key(arch: str) -> None:
    entry = _manifest()[arch]
    state = _model21(arch).state_dict()
    got = [[name, list(t.shape), str(t.dtype).removeprefix('torch.')]
           for name, t in state.items()]
    assert [k[0] for k in got] == [k[0] for k in entry['keys']]  # names and order first
    assert got == entry['keys']  # then shapes and dtypes
    assert len(state) == entry['num_keys']
    model = _model21(arch)
    assert len(list(model.parameters())) == entry['num_parameter_tensors']
    buffers = dict(model.named_buffers())
    assert list(buffers) == entry['buffer_keys']
    assert sum(b.numel() for b in buffers.values()) == entry['num_buffer_elements']
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(norms) == entry['num_batchnorm2d']
    assert all(m.eps == 1e-5 and m.affine and m.track_running_stats for m in norms)


def test_only_the_classifier_has_a_bias() -> None:
    for arch, classifier in (('mbv2', 'segm'), ('resnet50', 'clf_conv')):
        model = _model21(arch)
        convs = {name: m for name, m in model.named_modules() if isinstance(m, nn.Conv2d)}
        assert [name for name, m in convs.items() if m.bias is not None] == [classifier]
        assert convs[classifier].kernel_size == (3, 3) and convs[classifier].padding == (1, 1)
        assert model.classifier_name == classifier


@pytest.mark.parametrize('arch, encoder, decoder', [('mbv2', 156, 27), ('resnet50', 159, 28)])
def test_encoder_decoder_split_matches_the_reference_optimiser_groups(
        arch: str, encoder: int, decoder: int) -> None:
    # Spec section 9: the reference splits by the regex .*conv1.*|.*bn1.*|.*layer.*
    model = _model21(arch)
    assert len(list(model.encoder_parameters())) == encoder
    assert len(list(model.decoder_parameters())) == decoder
    keys = model.encoder_state_keys()
    assert keys and all(k.startswith(('conv1', 'bn1', 'layer')) for k in keys)


@pytest.mark.parametrize('arch', ['mbv2', 'resnet50'])
@pytest.mark.parametrize('size', [(33, 47), (97, 131), (1, 1), (5, 130)])
def test_logits_are_at_stride_four_with_ceil_for_any_size(arch: str, size: tuple) -> None:
    model = _model21(arch).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, *size))
    assert out.shape == (1, 21, math.ceil(size[0] / 4), math.ceil(size[1] / 4))
    assert out.dtype == torch.float32


@pytest.mark.slow
@pytest.mark.parametrize('arch', ['resnet101', 'resnet152'])
def test_deep_resnets_run_on_odd_sizes(arch: str) -> None:
    model = _model21(arch).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 33, 47))
    assert out.shape == (2, 21, 9, 12)


@pytest.mark.parametrize('arch', ['mbv2', 'resnet50'])
def test_eval_is_deterministic_and_dropout_only_acts_in_training(arch: str) -> None:
    model = build_model(arch, 3)
    torch.manual_seed(1)
    x = torch.randn(1, 3, 64, 64)
    model.eval()
    with torch.no_grad():
        first, second = model(x), model(x)
    assert torch.equal(first, second)
    if arch.startswith('resnet'):
        model.train()
        for module in model.modules():  # keep BN statistics out of the comparison
            if isinstance(module, nn.BatchNorm2d):
                module.eval()
        with torch.no_grad():
            assert not torch.equal(model(x), first)


def test_unknown_arch_and_bad_class_counts_raise_config_errors() -> None:
    with pytest.raises(ConfigError, match='resnet18'):
        build_model('resnet18', 21)
    for bad in (0, -3, True, 2.0):
        with pytest.raises(ConfigError, match='num_classes'):
            build_model('mbv2', bad)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- forward math
# An independent functional re-implementation of the decoders straight from the spec
# (sections 2-4): any of the section-7 mistakes (unchained CRP, ReLU for ReLU6, 3x3 pool,
# align_corners=False) makes the model disagree with it.


def _spec_crp(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    crp = block[0]
    top = x
    out = x
    for stage in range(1, 5):
        weight = crp[f'{stage}_outvar_dimred'].weight
        top = F.conv2d(F.max_pool2d(top, 5, stride=1, padding=2), weight)
        out = out + top
    return out


def _up(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, size=like.shape[-2:], mode='bilinear', align_corners=True)


def _spec_mbv2_decoder(m: nn.Module, feats: list) -> torch.Tensor:
    l3, l4, l5, l6, l7, l8 = feats

    def c(name: str, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, getattr(m, name).weight)

    a = F.relu6(c('conv8', l8) + c('conv7', l7))
    a = _up(c('conv_adapt4', _spec_crp(m.crp4, a)), l6)
    b = F.relu6(c('conv5', l5) + c('conv6', l6) + a)
    b = _up(c('conv_adapt3', _spec_crp(m.crp3, b)), l4)
    d = F.relu6(b + c('conv4', l4))
    d = _up(c('conv_adapt2', _spec_crp(m.crp2, d)), l3)
    e = _spec_crp(m.crp1, F.relu6(c('conv3', l3) + d))
    return F.conv2d(e, m.segm.weight, m.segm.bias, padding=1)


def _spec_resnet_decoder(m: nn.Module, feats: list) -> torch.Tensor:
    l1, l2, l3, l4 = feats

    def c(name: str, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, getattr(m, name).weight)

    g = F.relu(c('p_ims1d2_outl1_dimred', l4))
    g = _up(c('mflow_conv_g1_b3_joint_varout_dimred', _spec_crp(m.mflow_conv_g1_pool, g)), l3)
    for stage, skip, nxt in ((2, l3, l2), (3, l2, l1)):
        s = c(f'adapt_stage{stage}_b2_joint_varout_dimred', c(f'p_ims1d2_outl{stage}_dimred',
                                                             skip))
        g = _spec_crp(getattr(m, f'mflow_conv_g{stage}_pool'), F.relu(s + g))
        g = _up(c(f'mflow_conv_g{stage}_b3_joint_varout_dimred', g), nxt)
    s = c('adapt_stage4_b2_joint_varout_dimred', c('p_ims1d2_outl4_dimred', l1))
    g = _spec_crp(m.mflow_conv_g4_pool, F.relu(s + g))
    return F.conv2d(g, m.clf_conv.weight, m.clf_conv.bias, padding=1)


@pytest.mark.parametrize('arch, spec', [('mbv2', _spec_mbv2_decoder),
                                        ('resnet50', _spec_resnet_decoder)])
def test_decoder_matches_a_functional_implementation_of_the_spec(arch: str, spec) -> None:
    torch.manual_seed(2)
    model = build_model(arch, 5).eval()
    _randomize_bn(model)
    x = torch.randn(1, 3, 45, 61)  # odd: exercises upsampling to exact skip sizes
    with torch.no_grad():
        feats = model.encode(x)
        expected = spec(model, feats)
        got = model(x)
    assert got.shape == (1, 5, 12, 16)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_mbv2_fusions_clip_at_six_and_resnet_fusions_do_not() -> None:
    torch.manual_seed(3)
    captured: dict[str, torch.Tensor] = {}

    def grab(name: str):
        def hook(module: nn.Module, args: tuple) -> None:
            captured[name] = args[0]
        return hook

    mbv2 = build_model('mbv2', 2).eval()
    for name in ('crp4', 'crp3', 'crp2', 'crp1'):
        getattr(mbv2, name).register_forward_pre_hook(grab(name))
    with torch.no_grad():
        for name in ('conv3', 'conv4', 'conv5', 'conv6', 'conv7', 'conv8'):
            getattr(mbv2, name).weight.mul_(50.0)  # push the sums far beyond 6
        # Synthetic taps of a 64x64 input: a fresh encoder's deep features are tiny.
        mbv2.decode([torch.randn(1, c, 64 // r, 64 // r) * 10
                     for c, r in zip(mbv2.out_channels, mbv2.reductions)])
    for name in ('crp4', 'crp3', 'crp2', 'crp1'):
        assert captured[name].max().item() == 6.0, name  # ReLU6, not ReLU
        assert captured[name].min().item() == 0.0, name

    resnet = build_model('resnet50', 2).eval()
    resnet.mflow_conv_g4_pool.register_forward_pre_hook(grab('g4'))
    with torch.no_grad():
        resnet.p_ims1d2_outl4_dimred.weight.mul_(50.0)
        resnet.decode([torch.randn(1, c, 64 // r, 64 // r) * 10
                       for c, r in zip(resnet.out_channels, resnet.reductions)])
    assert captured['g4'].max().item() > 6.0  # plain ReLU on the ResNet path
    assert captured['g4'].min().item() == 0.0


@pytest.mark.parametrize('arch', ['mbv2', 'resnet50'])
def test_fold_batchnorm_keeps_outputs_and_leaves_the_original_alone(arch: str) -> None:
    torch.manual_seed(4)
    model = build_model(arch, 4)
    _randomize_bn(model)
    model.eval()
    x = torch.randn(1, 3, 37, 53)
    folded = fold_batchnorm(model)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert not folded.training and not any(p.requires_grad for p in folded.parameters())
    with torch.no_grad():
        expected, got = model(x), folded(x)
    scale = expected.abs().max().item()
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5 * max(1.0, scale))


@pytest.mark.slow
def test_torch_compile_eager_backend_smoke() -> None:
    model = build_model('mbv2', 3).eval()
    compiled = torch.compile(model, backend='eager', dynamic=False)
    x = torch.randn(1, 3, 33, 47)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), model(x))
