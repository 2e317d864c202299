"""HF129: a windowed transformer backbone (Swin and its descendants) gets a token map its windows or
patch merging cannot take: an odd side at a 2x2 patch merging, a side that is not a multiple of the
window at a window partition, a token count that is not the H*W the block was built for.

A Swin-style backbone embeds ``patch`` x ``patch`` patches, then halves the map at each of its merges,
and every stage partitions its map into ``window`` x ``window`` windows. So the input side must be a
multiple of ``patch * 2**merges`` (for the merges) and each stage's side a multiple of the window: for
Swin-T (patch 4, window 7, 3 merges) that is a multiple of 32 * 7 = 224.
"""

from __future__ import annotations

import re

from headfit.diagnosis import Cause, Diagnosis
from headfit.explain.engine import rule
from headfit.explain.parse import ParsedError
from headfit.explain.rules._support import diagnose

CODE = "HF129"
SWIN_PATCH, SWIN_MERGES = 4, 3  # Swin-T/S/B/L: 4x4 patches, 3 patch merging layers (4 stages)
WINDOWS = (7, 12, 8, 16, 6, 14, 10)  # the window sizes of released Swin-style models, most common first
# the window partition view ([B, H/w, w, W/w, w, C]) is a view error: reshape.py reads it

_ODD = re.compile(r"x size \((?P<h>\d+)\*(?P<w>\d+)\) are not even")
_WRONG_SIZE = re.compile(r"input feature has wrong size")


@rule(CODE, priority=45, needs="are not even")
def odd_patch_merging(parsed: ParsedError) -> Diagnosis | None:
    m = _ODD.search(parsed.message)
    if not m:
        return None
    h, w = int(m["h"]), int(m["w"])
    odd = [s for s in (h, w) if s % 2]
    facts = [
        f"a patch merging joins 2x2 neighbouring tokens, so the token map must have even sides; it is {h}x{w}",
        *_stage_facts(h, w),
    ]
    window = next((win for win in WINDOWS if h % win == 0 and w % win == 0), None)
    need = SWIN_PATCH * 2**SWIN_MERGES * (window or 1)
    causes = [
        Cause(
            f"the input is too small or not a multiple of what the backbone divides it by: a {h}x{w} map "
            "reached a merging that needs an even one",
            0.75,
            fix=f"resize the input to a multiple of {need} per side (patch {SWIN_PATCH} x 2**{SWIN_MERGES} merges"
            + (f" x window {window}" if window else "")
            + "), e.g. the img_size the model was built for",
        ),
        Cause(
            "the model was built for a smaller img_size than it is given (or fewer stages would fit this input)",
            0.35,
            fix="build it with img_size= the input size (a multiple of the values above) or depths for fewer stages",
        ),
    ]
    return diagnose(
        CODE,
        parsed,
        f"a Swin patch merging got a {h}x{w} token map ({'both sides' if len(odd) == 2 else odd[0]} odd)",
        facts,
        causes,
    )


def _stage_facts(h: int, w: int) -> list[str]:
    """Where a map of ``h``x``w`` tokens sits: the input it comes from at each merging, with 4x4 patches."""
    return [
        f"with {SWIN_PATCH}x{SWIN_PATCH} patches, a {h}x{w} map before merging k comes from an input of "
        + ", ".join(
            f"{h * SWIN_PATCH * 2**k}x{w * SWIN_PATCH * 2**k} (k={k + 1})" for k in range(SWIN_MERGES)
        )
    ]


@rule(CODE, priority=45, needs="input feature has wrong size")
def token_count(parsed: ParsedError) -> Diagnosis | None:
    if not _WRONG_SIZE.search(parsed.message):
        return None
    facts = [
        "a Swin block checks that its L tokens are the H*W of the resolution it was built for "
        "(`assert L == H * W`): the image is not the size the model was built for"
    ]
    causes = [
        Cause(
            "the input size differs from the img_size the model was built with (its blocks keep a fixed "
            "input_resolution)",
            0.75,
            fix="resize the input to the model's img_size, or build the model with img_size= the input size "
            "(then the relative position tables and masks are rebuilt for it)",
        ),
        Cause(
            "a custom stage hands the block a token map of another size (an extra downsampling or a missing merge)",
            0.3,
            fix="print(x.shape, H, W) before the block",
        ),
    ]
    return diagnose(CODE, parsed, "a Swin block got another number of tokens than its H*W", facts, causes)
