"""Normalisation layers: HF114 BatchNorm on one value per channel, HF115 running stats of another width."""

from __future__ import annotations

import math
import re

from headfit.diagnosis import Cause, Diagnosis
from headfit.explain.arith import shape_str
from headfit.explain.engine import rule
from headfit.explain.parse import ParsedError
from headfit.explain.rules._support import diagnose, size_list

_SINGLE_VALUE = re.compile(
    r"Expected more than 1 value per channel when training, got input size (?:torch\.Size\()?\[([\d, ]*)\]?"
)
_RUNNING = re.compile(r"running_(mean|var) should contain (\d+) elements not (\d+)")


@rule("HF114", priority=60, needs="Expected more than 1 value per channel when training")
def batchnorm_single_value(parsed: ParsedError) -> Diagnosis | None:
    m = _SINGLE_VALUE.search(parsed.message)
    if not m:
        return None
    shape = size_list(m[1])
    facts = [f"BatchNorm in train mode averages over every axis but the channels: input {shape_str(shape)}"]
    if len(shape) >= 2 and shape[1] > 0:
        per_channel = math.prod(shape) // shape[1]
        others = [shape[0], *shape[2:]]
        facts.append(
            f"values per channel = {'*'.join(map(str, others))} = {per_channel}: the variance of one value is undefined"
        )
    causes = [
        Cause(
            "the last batch of the epoch has a single sample (dataset size = k * batch_size + 1)",
            0.55,
            fix="DataLoader(dataset, batch_size=..., shuffle=True, drop_last=True)",
        ),
        Cause("the model runs inference (one image) while still in train mode", 0.45, fix="model.eval()"),
        Cause(
            "training really uses batches of 1: BatchNorm cannot work there",
            0.25,
            fix="replace nn.BatchNorm2d(C) with nn.GroupNorm(32, C), or freeze BN: "
            "[m.eval() for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]",
        ),
    ]
    if len(shape) == 4 and shape[2:] == [1, 1]:
        facts.append(
            "the input is [1, C, 1, 1]: this BatchNorm sits after a global pooling (e.g. DeepLabV3's ASPP pooling "
            "branch or an SE block), where even a large image gives one value per channel"
        )
    return diagnose(
        "HF114",
        parsed,
        f"BatchNorm got one value per channel in train mode (input {shape_str(shape)})",
        facts,
        causes,
    )


@rule("HF115", priority=60, needs="should contain")
def running_stats_size(parsed: ParsedError) -> Diagnosis | None:
    """BatchNorm reads its channels from dim 1: a tensor whose dim 1 is not the channel axis (a [N, L, C]
    sequence, a sample without its batch dimension) gives the same message as a layer of another width."""
    m = _RUNNING.search(parsed.message)
    if not m:
        return None
    channels, features = int(m[2]), int(m[3])
    facts = [
        f"the input has {channels} channels (dim 1, where BatchNorm reads them); the BatchNorm was built with "
        f"num_features={features} (its running_{m[1]} has {features} entries)"
    ]
    axis = [
        Cause(
            f"dim 1 is not the channel axis: a [N, L, C] sequence into BatchNorm1d (L = {channels} positions, "
            f"C = {features} features) needs [N, C, L]",
            0.55,
            fix="x = bn(x.transpose(1, 2)).transpose(1, 2)  # or nn.LayerNorm(C), which normalises the last axis",
        ),
        Cause(
            f"a single sample without its batch dimension: [C, L] is read as [N = C, C = L], so dim 1 ({channels}) "
            "looks like the channels",
            0.4,
            fix="x = x.unsqueeze(0)  # [C, L] -> [1, C, L]",
        ),
    ]
    width = [
        Cause(
            f"the layer before the BatchNorm outputs {channels} channels (it was changed or sized differently)",
            0.6,
            attribute="num_features",
            fix=f"nn.BatchNorm2d({channels})  # or give the conv before it out_channels={features}; a pretrained "
            "BatchNorm rebuilt this way loses its statistics",
        ),
        Cause(
            f"the BatchNorm comes from a checkpoint or config for a {features}-channel layer",
            0.3,
            attribute="num_features",
            fix=f"rebuild the BatchNorm with num_features={channels} and drop its stats from the checkpoint",
        ),
    ]
    near = abs(channels - features) <= max(2, features // 20)  # 136 vs 135: a changed width, not another axis
    if near:
        facts.append(f"{channels} and {features} are nearly equal: a width that changed, not another axis")
    if near or (_channel_like(channels) and _channel_like(features)):
        causes = width + axis
        for c in axis:
            c.confidence = 0.2
    else:
        causes = axis + width
        width[0].confidence = 0.45
    return diagnose(
        "HF115",
        parsed,
        f"a BatchNorm for {features} channels got an input with {channels}",
        facts,
        causes,
    )


def _channel_like(n: int) -> bool:
    """Channel counts of real layers are multiples of 8 (64, 96, 128, 2048); sequence lengths mostly are not."""
    return n >= 8 and n % 8 == 0
