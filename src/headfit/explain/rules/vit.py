"""HF121: a ViT-style model gets an image of another size than its patch grid / position embedding was
built for (torchvision, timm, Hugging Face wordings, and the raw position-embedding broadcast)."""

from __future__ import annotations

import re

from headfit.diagnosis import Cause, Diagnosis
from headfit.explain.engine import rule
from headfit.explain.parse import ParsedError
from headfit.explain.rules._support import diagnose, is_power_of_two, parse_broadcast, token_grid

CODE = "HF121"
PATCH_SIZES = (16, 14, 32, 8)  # the patch sizes of common ViTs, most common first

_TORCHVISION = re.compile(r"Wrong image (height|width)! Expected (\d+) but got (\d+)!")
_TIMM = re.compile(
    r"Input (?:image )?(height|width) \((\d+)\) doesn't match model \((\d+)\)"
)  # timm < 0.6: "image"
# Hugging Face's ViT, and timm before 0.5 (same words)
_HF = re.compile(r"Input image size \((\d+)\*(\d+)\) doesn't match model \((\d+)\*(\d+)\)")


@rule(CODE, priority=40, needs="Wrong image ")
def torchvision_vit_size(parsed: ParsedError) -> Diagnosis | None:
    m = _TORCHVISION.search(parsed.message)
    if not m:
        return None
    side, model_size, got = m[1], int(m[2]), int(m[3])
    causes = [
        _resize_cause(model_size),
        Cause(
            f"the model should run at {got}: build it for that size and interpolate the pretrained position embedding",
            0.4,
            fix=f"model = vit_b_16(image_size={got}); from torchvision.models.vision_transformer import interpolate_embeddings; "
            f"model.load_state_dict(interpolate_embeddings({got}, 16, pretrained_state_dict))",
        ),
    ]
    return diagnose(
        CODE,
        parsed,
        f"the ViT was built for {model_size}x{model_size} images but got image {side} {got}",
        [f"image {side}: model {model_size}, input {got}", *_grid_facts(model_size, got)],
        causes,
    )


@rule(CODE, priority=40, needs="doesn't match model (")
def timm_vit_size(parsed: ParsedError) -> Diagnosis | None:
    m = _TIMM.search(parsed.message)
    if not m:
        return None
    side, got, model_size = m[1], int(m[2]), int(m[3])
    causes = [
        _resize_cause(model_size),
        Cause(
            f"the model should run at {got}: timm resamples the position embedding when the model is created for that size",
            0.45,
            fix=f"model = timm.create_model(name, pretrained=True, img_size={got})  # or dynamic_img_size=True for any size",
        ),
    ]
    return diagnose(
        CODE,
        parsed,
        f"the timm model was built for {model_size}-pixel images but got an input {side} of {got}",
        [f"input {side}: model {model_size}, input {got}", *_grid_facts(model_size, got)],
        causes,
    )


@rule(CODE, priority=40, needs="doesn't match model (")
def hf_vit_size(parsed: ParsedError) -> Diagnosis | None:
    m = _HF.search(parsed.message)
    if not m:
        return None
    h, w, mh, mw = (int(g) for g in m.groups())
    causes = [
        _resize_cause(mh, mw),
        Cause(
            f"the model should run at {h}x{w}: let it interpolate the position embedding",
            0.45,
            fix="outputs = model(pixel_values, interpolate_pos_encoding=True)  # Hugging Face; timm: "
            f"timm.create_model(name, pretrained=True, img_size=({h}, {w}))",
        ),
    ]
    return diagnose(
        CODE,
        parsed,
        f"the model was built for {mh}x{mw} images but got {h}x{w}",
        [f"input {h}x{w}, model {mh}x{mw}", *_grid_facts(mh, h)],
        causes,
    )


@rule(CODE, priority=40, needs=("must match the size of tensor b", "Attempting to broadcast a dimension"))
def position_embedding_size(parsed: ParsedError) -> Diagnosis | None:
    """``x + pos_embed`` with token counts that are both square patch grids plus a class token."""
    found = parse_broadcast(parsed.message)
    if found is None or found.dim not in (1, None) or found.a == found.b:
        return None
    grids = _grid(found.a), _grid(found.b)
    if grids[0] is None or grids[1] is None or grids[0][0] == grids[1][0] or grids[0][1] != grids[1][1]:
        return None
    if grids[0][1] == 0 and (
        is_power_of_two(found.a) or is_power_of_two(found.b) or min(found.a, found.b) < 49
    ):
        return None  # 256 against 1024 channels is no patch grid: without a class token, only ViT-like grids
    (grid_a, prefix), (grid_b, _) = grids
    token = "" if not prefix else f" + {prefix} class token{'s' if prefix > 1 else ''}"
    facts = [
        f"{found.a} tokens = {grid_a}*{grid_a} patches{token}: a {grid_a}x{grid_a} patch grid",
        f"{found.b} tokens = {grid_b}*{grid_b} patches{token}: a {grid_b}x{grid_b} patch grid",
        *(
            f"with {p}-pixel patches: {grid_a * p}x{grid_a * p} input against a position embedding for {grid_b * p}x{grid_b * p}"
            for p in PATCH_SIZES[:2]
        ),
    ]
    p = PATCH_SIZES[0]
    causes = [
        Cause(
            f"the image ({grid_a * p}x{grid_a * p} with 16-pixel patches) is not the size the position embedding ({grid_b}x{grid_b} grid) was made for",
            0.7,
            fix=f"transforms.Resize(({grid_b * p}, {grid_b * p}))",
        ),
        Cause(
            f"the model should run at the new size: resample the position embedding from a {grid_b}x{grid_b} to a {grid_a}x{grid_a} grid",
            0.5,
            fix=f"from timm.layers import resample_abs_pos_embed; model.pos_embed = nn.Parameter(resample_abs_pos_embed(model.pos_embed, ({grid_a}, {grid_a}), num_prefix_tokens={prefix}))",
        ),
    ]
    return diagnose(
        CODE,
        parsed,
        f"the position embedding has {found.b} tokens ({grid_b}x{grid_b} grid) but the image gives {found.a} ({grid_a}x{grid_a})",
        facts,
        causes,
    )


def _grid(tokens: int) -> tuple[int, int] | None:
    """(side, prefix tokens): a square patch grid plus 1 (class), 0 or 2 (class, distillation) tokens."""
    for prefix in (1, 0, 2):
        side = token_grid(tokens, prefix)
        if side is not None:
            return side, prefix
    return None


def _resize_cause(model_h: int, model_w: int | None = None) -> Cause:
    model_w = model_h if model_w is None else model_w
    return Cause(
        f"the input pipeline does not resize to the model's {model_h}x{model_w}",
        0.6,
        fix=f"transforms.Resize(({model_h}, {model_w}))",
    )


def _grid_facts(model_size: int, got: int) -> list[str]:
    """The patch grids of both sizes for the first patch size that divides the model's size."""
    for p in PATCH_SIZES:
        if model_size % p == 0:
            grid = f"{model_size} / {p} = {model_size // p} patches per side for the model"
            if got % p == 0:
                return [grid, f"{got} / {p} = {got // p} patches per side for the input ({p}-pixel patches)"]
            return [grid, f"{got} is not a multiple of the {p}-pixel patch size"]
    return []
