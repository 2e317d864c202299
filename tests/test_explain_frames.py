"""What the traceback shows: every frame's file, function and source line is read, the facts say
``traceback shows ...``, and the signs it finds rank the causes."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from explain_support import raised
from headfit.explain import explain
from real_messages import all_cases


def facts(d) -> str:
    return "\n".join(d.facts)


def test_the_users_failing_line_is_stated():
    def forward(x):
        return nn.Linear(512, 10)(x.view(x.size(0), -1))

    d = explain(raised(lambda: forward(torch.zeros(2, 512, 2, 2))).text)
    assert (
        "traceback shows your code's innermost call `return nn.Linear(512, 10)(x.view(x.size(0), -1))`"
        in facts(d)
    )
    assert "(test_explain_frames.py:" in facts(d) and "in `forward`" in facts(d)


def test_a_dataloaders_collate_is_named():
    from torch.utils.data import DataLoader

    samples = [torch.zeros(3, 8, 8), torch.zeros(3, 9, 8)]
    d = explain(raised(lambda: next(iter(DataLoader(samples, batch_size=2)))).text)
    assert d.code == "HF108"
    assert "traceback shows the DataLoader's default collate stacking samples into a batch" in facts(d)


def test_a_squeeze_that_dropped_the_batch_of_one_comes_first():
    bn = nn.BatchNorm1d(8)

    def head(features):
        return bn(features.squeeze())

    d = explain(raised(lambda: head(torch.zeros(1, 8, 1))).text)
    assert d.code == "HF105"
    assert "squeeze()" in d.causes[0].summary and "x.squeeze(-1)" in d.causes[0].fix


def test_a_reshape_that_folds_positions_into_the_rows():
    head = nn.Linear(64, 5)

    def loss(features, labels):
        return F.cross_entropy(head(features.permute(0, 2, 1).reshape(-1, 64)), labels)

    d = explain(raised(lambda: loss(torch.zeros(4, 64, 10), torch.zeros(4, dtype=torch.long))).text)
    assert d.code == "HF109"
    assert "traceback shows a reshape that folds an axis into the rows" in facts(d)
    assert "10 positions of each sample" in d.causes[0].summary


def test_a_summary_tools_own_dummy_input_on_its_default_device():
    # torchsummary's summary() builds its input on cuda by default; pasted as users paste it
    text = (
        "Traceback (most recent call last):\n"
        '  File "train.py", line 12, in <module>\n'
        "    summary(model, (3, 224, 224))\n"
        '  File "/usr/local/lib/python3.7/dist-packages/torchsummary/torchsummary.py", line 72, in summary\n'
        "    model(*x)\n"
        '  File "/usr/local/lib/python3.7/dist-packages/torch/nn/modules/conv.py", line 443, in forward\n'
        "    return self._conv_forward(input, self.weight, self.bias)\n"
        "RuntimeError: Input type (torch.cuda.FloatTensor) and weight type (torch.FloatTensor) should be the same\n"
    )
    d = explain(text)
    assert d.code == "HF124"
    assert "traceback shows a model-summary tool that builds its own dummy input" in facts(d)
    assert 'device="cpu"' in d.causes[0].fix


def test_no_diagnosis_of_a_traceback_claims_there_is_none():
    with_frames = []
    for case in all_cases():
        d = explain(case.text)
        if d.code and (d.location or d.user_location):
            with_frames.append(case.name)
            assert not any("no traceback" in f for f in d.facts), (case.name, d.facts)
    assert len(with_frames) >= 30
