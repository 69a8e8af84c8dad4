import math

import torch

from hyperinr.models.coordnet import (
    CoordNet,
    ResBlock,
    SineLayer,
    from_teacher_range,
    to_teacher_range,
)


def test_reference_layout_and_output_range():
    net = CoordNet(4, 1, (64, 128, 256), 10)
    blocks = list(net.net)
    # 3 encoder blocks + 10 hidden + 1 decoder, as in the reference and Sec. 5 of the paper
    assert len(blocks) == 14
    assert [b.layer1.linear.out_features for b in blocks[:3]] == [64, 128, 256]
    assert blocks[-1].layer2.linear.out_features == 1
    assert abs(sum(p.numel() for p in net.parameters()) - 1.49e6) < 0.01e6  # field notes: 1.49 M
    y = net(torch.rand(512, 4) * 2 - 1)
    assert y.shape == (512, 1) and y.abs().max() <= 1.0


def test_siren_init_bounds_and_shortcut():
    block = ResBlock(64, 128)
    bound = math.sqrt(6 / 64) / 30
    assert block.layer1.linear.weight.abs().max() <= bound
    assert block.shortcut.linear.weight.shape == (128, 64)  # sine shortcut when widths differ
    same = ResBlock(32, 32)
    x = torch.rand(5, 32)
    assert torch.allclose(same(x), 0.5 * (same.layer2(same.layer1(x)) + x))


def test_value_mapping_round_trip():
    v = torch.rand(100)
    assert torch.allclose(from_teacher_range(to_teacher_range(v)), v)
    assert to_teacher_range(torch.tensor([0.0, 1.0])).tolist() == [-1.0, 1.0]


def test_sine_layers_ignore_autocast():
    # Training autocasts to float16 on CUDA; sin(30 z) must still see a float32 z.  CPU autocast
    # to bfloat16 would lower nn.Linear the same way, so it stands in for CUDA here.
    torch.manual_seed(0)
    layer = SineLayer(4, 16)
    net = CoordNet(4, 1, (16, 32), 1)
    x = torch.rand(64, 4) * 2 - 1
    want_layer, want_net = layer(x), net(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.get_autocast_dtype("cpu") == torch.bfloat16
        assert torch.nn.functional.linear(x, layer.linear.weight).dtype == torch.bfloat16
        got_layer, got_net = layer(x), net(x)
        got_half_in = layer(x.bfloat16())  # a lowered input is promoted, not computed in bf16
    assert got_layer.dtype == got_net.dtype == got_half_in.dtype == torch.float32
    torch.testing.assert_close(got_layer, want_layer, rtol=0, atol=0)
    torch.testing.assert_close(got_net, want_net, rtol=0, atol=0)
    torch.testing.assert_close(got_half_in, layer(x.bfloat16().float()), rtol=0, atol=0)


def test_reference_inputs_are_the_identity_embedding():
    # no periodic parameter and scale 1: the reference network, input untouched, same weights
    plain = CoordNet(4, 1, (16, 16), 1, seed=3)
    again = CoordNet(4, 1, (16, 16), 1, seed=3, periodic=(False,), param_scale=1.0)
    x = torch.rand(64, 4) * 2 - 1
    assert plain.embed(x) is x
    torch.testing.assert_close(plain(x), again(x), rtol=0, atol=0)
    torch.testing.assert_close(plain(x), plain.net(x), rtol=0, atol=0)


def test_periodic_parameter_wraps_and_scale_applies():
    # (theta, phi, x, y) with phi periodic: phi = -1 and +1 (0 and 360 degrees) are one input
    net = CoordNet(4, 3, (16, 16), 1, periodic=(False, True), param_scale=0.5)
    assert net.net[0].layer1.linear.in_features == 5  # theta, cos phi, sin phi, x, y
    x = torch.rand(32, 4) * 2 - 1
    lo, hi = x.clone(), x.clone()
    lo[:, 1], hi[:, 1] = -1.0, 1.0
    torch.testing.assert_close(net(lo), net(hi), rtol=0, atol=1e-6)
    e = net.embed(x)
    angle = math.pi * (x[:, 1] + 1)
    want = torch.stack(
        [0.5 * x[:, 0], 0.5 * torch.cos(angle), 0.5 * torch.sin(angle), x[:, 2], x[:, 3]], dim=1
    )
    torch.testing.assert_close(e, want)
    x2 = x.clone()
    x2[:, 1] = x[:, 1] + 0.25  # a quarter turn moves the embedding, it is not lost
    assert not torch.allclose(net(x2), net(x))


def test_param_scale_scales_the_parameters_only():
    net = CoordNet(4, 1, (16, 16), 1, periodic=(False, False), param_scale=0.25)
    x = torch.rand(16, 4) * 2 - 1
    want = torch.cat([0.25 * x[:, :2], x[:, 2:]], dim=1)
    torch.testing.assert_close(net.embed(x), want, rtol=0, atol=0)
    torch.testing.assert_close(net(x), net.net(want), rtol=0, atol=0)
