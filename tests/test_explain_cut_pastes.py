"""Pastes cut at the start (no exception type, a log prefix, the traceback's first lines gone) or at the
end (the message stops after its last number): every error kind is still named, with the same code.

The messages are produced by running the faulty torch code here, one per error kind."""

from __future__ import annotations

import re
import traceback

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from explain_support import raised
from headfit.explain import explain

pytestmark = pytest.mark.filterwarnings("ignore")

KINDS = {
    "view": lambda: torch.zeros(7).view(3, -1, 5),
    "linear": lambda: nn.Linear(512, 10)(torch.zeros(4, 2048)),
    "conv_channels": lambda: nn.Conv2d(3, 8, 3)(torch.zeros(1, 1, 8, 8)),
    "conv_rank": lambda: nn.Conv2d(3, 8, 3)(torch.zeros(8, 8)),
    "broadcast": lambda: torch.zeros(2, 3) + torch.zeros(2, 4),
    "cat": lambda: torch.cat([torch.zeros(1, 2, 28, 28), torch.zeros(1, 2, 29, 29)], 1),
    "stack": lambda: torch.stack([torch.zeros(3, 8, 8), torch.zeros(3, 9, 8)]),
    "batch_size": lambda: F.cross_entropy(torch.zeros(8, 3), torch.zeros(4, dtype=torch.long)),
    "label": lambda: F.cross_entropy(torch.zeros(4, 3), torch.tensor([0, 1, 2, 7])),
    "bce": lambda: F.binary_cross_entropy_with_logits(torch.zeros(4, 1), torch.zeros(4)),
    "kernel": lambda: F.conv2d(torch.zeros(1, 4, 2, 2), torch.zeros(4, 4, 3, 3)),
    "batchnorm": lambda: nn.BatchNorm1d(8)(torch.zeros(1, 8)),
    "running_stats": lambda: nn.BatchNorm1d(8)(torch.zeros(2, 6)),
    "dtype": lambda: F.nll_loss(torch.zeros(4, 3), torch.zeros(4)),
    "rnn_input": lambda: nn.LSTM(10, 4)(torch.zeros(3, 2, 12)),
    "rnn_hidden": lambda: nn.GRU(10, 4, num_layers=2)(torch.zeros(3, 2, 10), torch.zeros(1, 2, 4)),
    "spatial_target": lambda: F.cross_entropy(
        torch.zeros(2, 3, 4, 4), torch.zeros(2, 1, 4, 4, dtype=torch.long)
    ),
    "one_hot": lambda: F.one_hot(torch.tensor([0, 5]), 3),
    "in_place": lambda: torch.zeros(1, 4, 4).sub_(torch.zeros(3, 1, 1)),
    "empty_view": lambda: torch.zeros(0, 4).view(0, -1),
}
CODES = {name: explain(raised(fn).exception).code for name, fn in KINDS.items()}


def _message(name: str) -> str:
    return raised(KINDS[name]).message


def test_every_kind_is_diagnosed_whole():
    assert None not in CODES.values(), CODES


def _cut_after_last_number(message: str) -> str:
    """The message as a paste that stopped right after its last number (``...of size 7`` with the closing words,
    brackets and full stop gone)."""
    last = list(re.finditer(r"\d+", message))[-1]
    return message[: last.end()]


@pytest.mark.parametrize("name", sorted(KINDS))
def test_without_the_exception_type(name):
    assert explain(_message(name)).code == CODES[name]


# a message with two numbers or more keeps its meaning when the words after its last number are gone
NUMBERED = sorted(name for name in KINDS if len(re.findall(r"\d+", _message(name))) >= 2)


@pytest.mark.parametrize("name", NUMBERED)
def test_cut_after_the_last_number(name):
    cut = _cut_after_last_number(_message(name))
    assert explain(f"RuntimeError: {cut}").code == CODES[name], cut


@pytest.mark.parametrize("name", sorted(KINDS))
def test_behind_a_log_prefix(name):
    text = f"2024-05-01 12:00:03 | ERROR | train.py:88 - RuntimeError: {_message(name)}"
    assert explain(text).code == CODES[name]


@pytest.mark.parametrize("name", sorted(KINDS))
def test_a_traceback_cut_before_its_first_frame(name):
    exc = raised(KINDS[name]).exception
    lines = "".join(traceback.format_exception(exc)).splitlines()
    cut = "\n".join(lines[3:])  # no header, and the first frame's header line gone
    assert explain(cut).code == CODES[name]
