"""Fixes that rebuild a layer at another width keep everything else that shapes its output."""

from __future__ import annotations

import pytest
from torch import nn

from headfit.nnutil import layer_code


@pytest.mark.parametrize(
    "layer, widths, expected",
    [
        (nn.Linear(3, 4, bias=False), (5, 4), "nn.Linear(5, 4, bias=False)"),
        (nn.Conv2d(512, 1000, 1), (512, 10), "nn.Conv2d(512, 10, kernel_size=1)"),
        (
            nn.Conv2d(3, 16, 3, stride=2, padding=1, padding_mode="reflect"),
            (19, 16),
            "nn.Conv2d(19, 16, kernel_size=3, stride=2, padding=1, padding_mode='reflect')",
        ),
        (
            nn.Conv2d(32, 32, 3, padding=1, groups=32, bias=False),
            (64, 64),
            "nn.Conv2d(64, 64, kernel_size=3, padding=1, groups=64, bias=False)",
        ),
        (
            nn.Conv2d(8, 8, 3, padding="same", dilation=2),
            (4, 8),
            "nn.Conv2d(4, 8, kernel_size=3, padding='same', dilation=2)",
        ),
        (
            nn.ConvTranspose2d(32, 16, 2, stride=2),
            (64, 16),
            "nn.ConvTranspose2d(64, 16, kernel_size=2, stride=2)",
        ),
        (nn.Conv1d(4, 4, (5,), stride=(2,)), (6, 4), "nn.Conv1d(6, 4, kernel_size=5, stride=2)"),
    ],
)
def test_layer_code_keeps_the_geometry(layer, widths, expected):
    code = layer_code(layer, *widths)
    assert code == expected
    rebuilt = eval(code, {"nn": nn})
    assert type(rebuilt) is type(layer)
    for name in ("kernel_size", "stride", "padding", "dilation", "padding_mode", "output_padding"):
        assert getattr(rebuilt, name, None) == getattr(layer, name, None), name
    assert (rebuilt.bias is None) == (layer.bias is None)
