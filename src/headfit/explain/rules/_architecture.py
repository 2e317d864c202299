"""What a checkpoint's size mismatches say beyond a head for another class count (HF106): a position
embedding for another image size, a first conv for another number of input channels, Bottleneck against
BasicBlock residual blocks, a width multiplier, a vocabulary of another size, dense heads for another
number of anchors, a YOLO detect layer for another class count.

Each finder reads the mismatched keys and shapes only and returns a ``Finding`` (its facts, its causes,
the keys it explains) or None. ``state_dict.py`` runs them before its class-count reasoning. No torch.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Protocol

from headfit.diagnosis import Cause
from headfit.explain.arith import fmt, shape_str
from headfit.explain.rules._support import token_grid

PATCH = 16  # the patch size of most ViTs (14 for DINOv2/CLIP-L)
_POS_EMBED = re.compile(
    r"(?:^|\.)(?:pos_embed|pos_embedding|position_embeddings|absolute_pos_embed)(?:\.weight)?$"
)
_REL_TABLE = re.compile(r"relative_position_bias_table$")
_VOCAB = re.compile(
    r"(?:^|\.)(?:embedding|embed_tokens|word_embeddings|embeddings\.word_embeddings|shared|lm_head|tgt_embed\.\d+\.lut|"
    r"src_embed\.\d+\.lut|embed|tok_embeddings|wte)\.weight$"
)
_BLOCK_CONV = re.compile(r"(?:^|\.)layer\d\.\d+\.conv[12]\.weight$")
_RPN = re.compile(r"rpn", re.I)
# a head's layers: their first dimension is a class count, which says nothing about the backbone's width
_HEADISH = re.compile(
    r"(?:^|\.)(?:fc|classifier|head|cls\w*|\w*logits|bbox_pred|box_predictor|last_linear)(?:\.|$)"
)
COCO_OBJECTS = 80
YOLO_ANCHORS = 3


class Shaped(Protocol):
    key: str
    checkpoint: list[int]
    model: list[int]

    @property
    def module(self) -> str: ...


@dataclass
class Finding:
    summary: str
    facts: list[str] = field(default_factory=list)
    causes: list[Cause] = field(default_factory=list)
    keys: set[str] = field(default_factory=set)  # the mismatches it explains


Finder = Callable[[list[Shaped], str], "Finding | None"]


def findings(mismatches: list[Shaped], message: str) -> list[Finding]:
    """Every finding, in the order their summaries are preferred."""
    found = []
    explained: set[str] = set()
    for finder in FINDERS:
        finding = finder([m for m in mismatches if m.key not in explained], message)
        if finding is not None:
            found.append(finding)
            explained |= finding.keys
    return found


# --- position embeddings ----------------------------------------------------------------------------


def position_embedding(mismatches: list[Shaped], message: str) -> Finding | None:
    m = next((m for m in mismatches if _POS_EMBED.search(m.key)), None)
    if m is None or len(m.checkpoint) != len(m.model) or m.checkpoint[-1] != m.model[-1]:
        return None
    ckpt, model = _tokens(m.checkpoint), _tokens(m.model)
    grids = _grid(ckpt), _grid(model)
    if ckpt == model or None in grids:
        return None
    (side_c, prefix), (side_m, prefix_m) = grids  # type: ignore[misc]
    if side_c == side_m:
        return _class_token(m, side_c, prefix, prefix_m)
    res_c, res_m = side_c * PATCH, side_m * PATCH
    facts = [
        f"`{m.key}`: {fmt(ckpt)} tokens in the checkpoint = {side_c}x{side_c} patches"
        + (f" + {prefix} class token{'s' if prefix > 1 else ''}" if prefix else "")
        + f", {fmt(model)} in the model = {side_m}x{side_m}"
        + (f" + {prefix}" if prefix else ""),
        f"with {PATCH}-pixel patches that is a {res_c}x{res_c} checkpoint against a {res_m}x{res_m} model "
        f"({side_c * 14}x{side_c * 14} against {side_m * 14}x{side_m * 14} with 14-pixel patches)",
    ]
    timm_key = m.key.endswith("pos_embed")
    interpolate = (
        f"state['{m.key}'] = timm.layers.resample_abs_pos_embed(state['{m.key}'], ({side_m}, {side_m}), "
        f"num_prefix_tokens={prefix})"
        if timm_key
        else f"state = torchvision.models.vision_transformer.interpolate_embeddings({res_m}, {PATCH}, state)"
    )
    causes = [
        Cause(
            f"the checkpoint was trained at {res_c}x{res_c} ({side_c}x{side_c} patches); the model is built for "
            f"{res_m}x{res_m}: build it at the checkpoint's size",
            0.7,
            module=m.module,
            fix=f"timm.create_model(name, img_size={res_c})  # torchvision: vit_b_16(image_size={res_c})",
        ),
        Cause(
            f"keep the model's {res_m}x{res_m}: interpolate the checkpoint's position embedding to a {side_m}x{side_m} grid",
            0.6,
            module=m.module,
            fix=interpolate,
        ),
    ]
    return Finding(
        f"the checkpoint's position embedding is for {res_c}x{res_c} images ({side_c}x{side_c} patches), the model's "
        f"for {res_m}x{res_m} ({side_m}x{side_m})",
        facts,
        causes,
        {m.key},
    )


def _class_token(m: Shaped, side: int, ckpt: int, model: int) -> Finding:
    """The same patch grid with another number of prefix tokens: a class token on one side only."""
    facts = [
        f"`{m.key}`: {side}x{side} patches on both sides, with {ckpt} prefix token(s) in the checkpoint and {model} "
        "in the model (the class token, or a distillation token)"
    ]
    with_token = "the model has" if model > ckpt else "the checkpoint has"
    causes = [
        Cause(
            f"{with_token} a class token the other lacks: the model was built with another pooling than the checkpoint "
            "(a class token against global average pooling)",
            0.8,
            module=m.module,
            fix="build the model as the checkpoint was trained: timm.create_model(name, class_token=..., global_pool=...) "
            "with the checkpoint's setting",
        )
    ]
    return Finding(
        f"the checkpoint's position embedding has {ckpt} prefix token(s), the model's {model} (a class token on one side only)",
        facts,
        causes,
        {m.key},
    )


def _tokens(shape: list[int]) -> int:
    """[1, T, D] / [T, D] -> T; [1, h, w, D] -> h*w."""
    return shape[1] * shape[2] if len(shape) == 4 else shape[-2]


def _grid(tokens: int) -> tuple[int, int] | None:
    """(side, prefix tokens): a square grid of patches plus 0, 1 (class) or 2 (class, distillation) tokens."""
    for prefix in (1, 0, 2):
        side = token_grid(tokens, prefix)
        if side is not None:
            return side, prefix
    return None


def relative_position_table(mismatches: list[Shaped], message: str) -> Finding | None:
    found = [m for m in mismatches if _REL_TABLE.search(m.key) and len(m.checkpoint) == 2]
    if not found:
        return None
    m = found[0]
    windows = _window(m.checkpoint[0]), _window(m.model[0])
    if None in windows or windows[0] == windows[1]:
        return None
    wc, wm = windows
    beit = m.checkpoint[0] != (2 * wc - 1) ** 2
    plus = " + 3" if beit else ""
    facts = [
        f"`{m.key}` has (2*window - 1)**2{plus} rows: {m.checkpoint[0]} = {2 * wc - 1}**2{plus} (window {wc}) in the "
        f"checkpoint, {m.model[0]} = {2 * wm - 1}**2{plus} (window {wm}) in the model"
    ]
    if beit:  # BEiT's window is the whole patch grid: the image size
        facts.append(
            f"BEiT attends over the whole {wc}x{wc} / {wm}x{wm} patch grid: {wc * PATCH}x{wc * PATCH} against "
            f"{wm * PATCH}x{wm * PATCH} images with {PATCH}-pixel patches"
        )
        causes = [
            Cause(
                f"the checkpoint was trained at {wc * PATCH}x{wc * PATCH}, the model is built for "
                f"{wm * PATCH}x{wm * PATCH}: interpolate the relative position tables to the new grid",
                0.75,
                module=m.module,
                fix="resample each relative_position_bias_table to the model's grid before loading (BEiT/ViT-Adapter "
                "checkpoint loaders do it), or build the model at the checkpoint's size",
            )
        ]
        return Finding(
            f"the checkpoint's relative position tables are for {wc * PATCH}x{wc * PATCH} images, the model's for "
            f"{wm * PATCH}x{wm * PATCH}",
            facts,
            causes,
            {x.key for x in mismatches if "relative_position" in x.key},
        )
    causes = [
        Cause(
            f"the checkpoint is a window-{wc} model (e.g. Swin for {224 if wc == 7 else 384} inputs), the model "
            f"uses window {wm}: build it with window_size={wc}",
            0.75,
            module=m.module,
            attribute="window_size",
            fix=f"build the model with window_size={wc} (the variant the checkpoint was trained as)",
        ),
        Cause(
            "keep the model's window: interpolate each bias table (timm does this when it loads a checkpoint "
            "for another window)",
            0.45,
            module=m.module,
            fix="timm.create_model(name, pretrained=True, window_size=..., img_size=...)",
        ),
    ]
    return Finding(
        f"the checkpoint's attention windows are {wc}x{wc}, the model's {wm}x{wm}",
        facts,
        causes,
        {x.key for x in found},
    )


def _window(rows: int) -> int | None:
    """(2w - 1)**2 rows (Swin), or (2w - 1)**2 + 3 (BEiT: three more for the class token's relations)."""
    for extra in (0, 3):
        side = math.isqrt(rows - extra)
        if side * side == rows - extra and side % 2 == 1 and side > 1:
            return (side + 1) // 2
    return None


# --- the first conv ---------------------------------------------------------------------------------


def input_channels(mismatches: list[Shaped], message: str) -> Finding | None:
    """A conv whose input channels are 1-4 on both sides and differ: the first conv, for another image type."""
    for m in mismatches:
        c, md = m.checkpoint, m.model
        if len(c) not in (4, 5) or len(md) != len(c) or c[0] != md[0] or max(c[1], md[1]) > 4:
            continue
        if c[1] != md[1] and c[2:] == md[2:]:
            return _input_channels(m, c[1], md[1])
        if c[1] == md[1] and c[2:] != md[2:]:
            return _stem_kernel(m)
    return None


def _stem_kernel(m: Shaped) -> Finding:
    """The first conv with another kernel: a CIFAR-style stem (3x3, stride 1) against ImageNet's (7x7, stride 2)."""
    kc, km = "x".join(map(str, m.checkpoint[2:])), "x".join(map(str, m.model[2:]))
    facts = [
        f"`{m.key}` reads the image with a {kc} kernel in the checkpoint, {km} in the model: another stem"
    ]
    cifar = " (a CIFAR-style ResNet stem)" if m.checkpoint[2:] == [3, 3] else ""
    causes = [
        Cause(
            f"the checkpoint was trained with a {kc} first conv{cifar}; build the model with the same stem",
            0.8,
            module=m.module,
            attribute="kernel_size",
            fix=f"the first conv as in the checkpoint: nn.Conv2d({m.checkpoint[1]}, {m.checkpoint[0]}, kernel_size="
            f"{m.checkpoint[2]}, ...)  # or load a checkpoint of the model's variant",
        )
    ]
    return Finding(f"the checkpoint's first conv has a {kc} kernel, the model's {km}", facts, causes, {m.key})


def _input_channels(m: Shaped, ckpt: int, model: int) -> Finding:
    facts = [f"`{m.key}` takes {ckpt} input channels in the checkpoint, {model} in the model: the first conv"]
    if model < ckpt:
        adapt = f"state['{m.key}'] = state['{m.key}'].sum(dim=1, keepdim=True)" + (
            "" if model == 1 else f".repeat(1, {model}, 1, 1) / {model}"
        )
        how = "sum the pretrained filters over their input channels"
    else:
        adapt = (
            f"w = state['{m.key}']; state['{m.key}'] = torch.cat([w, w.mean(dim=1, keepdim=True).repeat(1, "
            f"{model - ckpt}, 1, 1)], dim=1) * {ckpt} / {model}"
        )
        how = "repeat the pretrained filters for the extra channels"
    causes = [
        Cause(
            f"the model takes {model}-channel images, the checkpoint was trained on {ckpt}: {how} (keeps the pretrained stem)",
            0.8,
            module=m.module,
            attribute="in_channels",
            fix=f"{adapt}  # timm does this itself: timm.create_model(name, pretrained=True, in_chans={model})",
        ),
        Cause(
            f"the file is another model's checkpoint (a {ckpt}-channel one, not the {model}-channel run you saved): "
            "load the checkpoint of this model",
            0.45,
            fix="load the checkpoint saved from the model with these input channels",
        ),
        Cause(
            f"give the model {ckpt}-channel images instead (the stem stays as trained)",
            0.4,
            fix="x = x.expand(-1, 3, -1, -1)  # grayscale -> RGB"
            if ckpt == 3 and model == 1
            else "convert the inputs",
        ),
    ]
    return Finding(
        f"the checkpoint's first conv takes {ckpt} channels, the model's {model}", facts, causes, {m.key}
    )


# --- residual block type ----------------------------------------------------------------------------


def block_type(mismatches: list[Shaped], message: str) -> Finding | None:
    """ResNet-style ``layerN.M.conv1``: a 1x1 kernel in a Bottleneck (ResNet-50/101/152), 3x3 in a BasicBlock
    (ResNet-18/34)."""
    convs = [
        m
        for m in mismatches
        if _BLOCK_CONV.search(m.key)
        and len(m.checkpoint) == len(m.model) == 4
        and m.checkpoint[2:] != m.model[2:]
    ]
    kernels = {(m.checkpoint[2], m.model[2]) for m in convs}
    if not convs or not kernels <= {(1, 3), (3, 1)}:
        return None
    ckpt_kind, model_kind = (
        ("Bottleneck", "BasicBlock") if (1, 3) in kernels else ("BasicBlock", "Bottleneck")
    )
    depths = {"Bottleneck": "ResNet-50/101/152", "BasicBlock": "ResNet-18/34"}
    m = convs[0]
    facts = [
        f"`{m.key}`: a {m.checkpoint[2]}x{m.checkpoint[3]} kernel in the checkpoint, {m.model[2]}x{m.model[3]} in the "
        f"model ({len(convs)} block conv{'s' if len(convs) > 1 else ''} like it)",
        f"a residual block whose conv1 is 1x1 is a Bottleneck ({depths['Bottleneck']}); 3x3 is a BasicBlock "
        f"({depths['BasicBlock']})",
    ]
    causes = [
        Cause(
            f"the checkpoint is a {depths[ckpt_kind]} ({ckpt_kind} blocks), the model a {depths[model_kind]} "
            f"({model_kind} blocks): build the architecture the checkpoint was trained as",
            0.85,
            fix=(
                "model = resnet50()  # or resnet101/resnet152: the checkpoint's depth"
                if ckpt_kind == "Bottleneck"
                else "model = resnet18()  # or resnet34: the checkpoint's depth"
            )
            + f"; or load weights made for a {depths[model_kind]}",
        )
    ]
    return Finding(
        f"the checkpoint has {ckpt_kind} blocks, the model {model_kind} blocks (another ResNet depth)",
        facts,
        causes,
        {
            x.key
            for x in mismatches
            if re.search(r"(?:^|\.)layer\d\.", x.key) or x.key.startswith(("fc.", "classifier."))
        },
    )


# --- dense heads: anchors, YOLO ---------------------------------------------------------------------


def _reshaped_modules(mismatches: list[Shaped]) -> set[str]:
    """Modules with a tensor that differs beyond dim 0 (a kernel, an input width): not a count of outputs."""
    return {m.module for m in mismatches if m.checkpoint[1:] != m.model[1:]}


def rpn_anchors(mismatches: list[Shaped], message: str) -> Finding | None:
    """An RPN's objectness conv emits A (torchvision) or 2*A (softmax) scores per location: another A is
    another set of anchor scales x aspect ratios."""
    reshaped = _reshaped_modules(mismatches)
    for m in mismatches:
        if not (_RPN.search(m.key) and re.search(r"cls", m.key)) or m.module in reshaped:
            continue
        per = 2 if m.checkpoint[0] % 2 == 0 and m.model[0] % 2 == 0 else 1
        ac, am = m.checkpoint[0] // per, m.model[0] // per
        facts = [
            f"`{m.key}` emits {'2 scores x ' if per == 2 else ''}A anchors per location: "
            f"{m.checkpoint[0]} = {per}*{ac} in the checkpoint, {m.model[0]} = {per}*{am} in the model"
            if per == 2
            else f"`{m.key}` emits A = {ac} scores per location in the checkpoint, {am} in the model",
            f"A = anchor scales x aspect ratios: {_anchor_split(ac)} against {_anchor_split(am)}",
        ]
        causes = [
            Cause(
                "the RPN was trained with another set of anchors (scales x aspect ratios) than the model is built with",
                0.8,
                module=m.module,
                fix="configure the anchor scales and ratios as in training (e.g. ANCHOR_SCALES / "
                "AnchorGenerator(sizes=..., aspect_ratios=...)), then load the checkpoint",
            )
        ]
        keys = {x.key for x in mismatches if _RPN.search(x.key) and x.module not in reshaped}
        return Finding(
            f"the checkpoint's RPN has {ac} anchors per location, the model's {am}", facts, causes, keys
        )
    return None


def _anchor_split(anchors: int) -> str:
    for ratios in (3, 5, 2):
        if anchors % ratios == 0:
            return f"{anchors} = {anchors // ratios} x {ratios}"
    return str(anchors)


def yolo_detect(mismatches: list[Shaped], message: str) -> Finding | None:
    """A YOLO detect conv (1x1) emits na * (nc + 5) channels: 255 = 3 * (80 + 5) for COCO."""
    reshaped = _reshaped_modules(mismatches)
    found = [
        m
        for m in mismatches
        if m.module not in reshaped
        and (len(m.checkpoint) == 1 or m.checkpoint[2:] == [1, 1])
        and all(x % YOLO_ANCHORS == 0 and x // YOLO_ANCHORS > 5 for x in (m.checkpoint[0], m.model[0]))
        and m.checkpoint[0] // YOLO_ANCHORS - 5 == COCO_OBJECTS
    ]
    if not found:
        return None
    m = next((x for x in found if len(x.checkpoint) == 4), found[0])
    nc_c, nc_m = m.checkpoint[0] // YOLO_ANCHORS - 5, m.model[0] // YOLO_ANCHORS - 5
    modules = sorted({x.module + "." for x in found})
    facts = [
        f"`{m.key}` is a YOLO detect conv: na*(nc+5) channels, {m.checkpoint[0]} = {YOLO_ANCHORS}*({nc_c}+5) in the "
        f"checkpoint (COCO's 80 classes), {m.model[0]} = {YOLO_ANCHORS}*({nc_m}+5) in the model"
    ]
    keep = ", ".join(f'"{p}"' for p in modules)
    causes = [
        Cause(
            f"a COCO-pretrained YOLO loaded into a model built for {nc_m} classes: load everything but the detect convs",
            0.85,
            module=m.module,
            fix=f"state = {{k: v for k, v in state.items() if not k.startswith(({keep},))}}; "
            "model.load_state_dict(state, strict=False)  # YOLOv5's train.py does this (intersect_dicts)",
        ),
        Cause(
            f"to run the pretrained model as is, build it for {nc_c} classes",
            0.4,
            fix=f"Model(cfg, nc={nc_c})  # darknet cfg: filters={m.checkpoint[0]}, classes={nc_c}",
        ),
    ]
    return Finding(
        f"the checkpoint's YOLO head is for {nc_c} classes, the model's for {nc_m}",
        facts,
        causes,
        {x.key for x in found},
    )


# --- vocabularies and widths ------------------------------------------------------------------------


def vocabulary(mismatches: list[Shaped], message: str) -> Finding | None:
    found = [
        m
        for m in mismatches
        if _VOCAB.search(m.key) and len(m.checkpoint) == 2 and m.checkpoint[1:] == m.model[1:]
    ]
    if not found:
        return None
    m = found[0]
    vc, vm = m.checkpoint[0], m.model[0]
    facts = [f"`{m.key}` has one row per token or label: {fmt(vc)} in the checkpoint, {fmt(vm)} in the model"]
    causes = [
        Cause(
            f"the model was built with another vocabulary (tokens or labels) than the checkpoint: use the one it "
            f"was trained with ({fmt(vc)} entries)",
            0.8,
            module=m.module,
            fix=f"build the model with the checkpoint's vocabulary: vocab_size={vc} (the same tokenizer or label file as "
            "in training); Hugging Face: model.resize_token_embeddings(len(tokenizer))",
        )
    ]
    return Finding(
        f"the checkpoint's vocabulary has {fmt(vc)} entries, the model's {fmt(vm)}",
        facts,
        causes,
        {x.key for x in found},
    )


def width(mismatches: list[Shaped], message: str) -> Finding | None:
    """Most mismatched dimensions in one ratio (2x, 4x, 1/2): a width multiplier or another variant."""
    ratios: Counter[Fraction] = Counter()
    body = [m for m in mismatches if not _HEADISH.search(m.module) or _reads_the_image(m)]
    for m in body:
        for c, md in zip(m.checkpoint, m.model, strict=False):
            if c != md and c > 0 and md > 0:
                ratios[Fraction(md, c)] += 1
    if not ratios:
        return None
    ratio, count = ratios.most_common(1)[0]
    if (
        max(ratio.numerator, ratio.denominator) > 4
    ):  # 1/2, 2, 3/2, 4 ...: a multiplier, not two unrelated sizes
        return None
    stem = any(_reads_the_image(m) for m in body)
    if count < 3 and not (stem and len(body) <= 2):
        return None
    if not (Fraction(1, 8) <= ratio <= 8) or count < sum(ratios.values()) * 0.6:
        return None
    m = next(
        m
        for m in body
        if any(
            c != md and Fraction(md, c) == ratio for c, md in zip(m.checkpoint, m.model, strict=False) if c
        )
    )
    c_dim, m_dim = next((c, md) for c, md in zip(m.checkpoint, m.model, strict=False) if c != md)
    wider = "wider" if ratio > 1 else "narrower"
    times = ratio if ratio > 1 else 1 / ratio
    relation = f"{max(c_dim, m_dim)} = {times} x {min(c_dim, m_dim)}"
    facts = [
        f"{count} of the mismatched dimensions are in one ratio: the model is {times}x {wider} than the checkpoint "
        f"(`{m.key}`: {shape_str(m.checkpoint)} against {shape_str(m.model)}; {relation})"
    ]
    causes = [
        Cause(
            f"the checkpoint is another width of the architecture ({times}x {'narrower' if ratio > 1 else 'wider'}: a "
            "width multiplier, a variant such as -S/-M/-L or wide_resnet, a features option): build the model with "
            "the checkpoint's width",
            0.8,
            fix="build the model with the width it was trained with (the same variant, width_mult or n_feats option)",
        ),
        Cause(
            "the model's width is the one you want: load a checkpoint of that variant instead",
            0.4,
            fix="load the checkpoint published for this variant",
        ),
    ]
    return Finding(
        f"the checkpoint is {times}x {'narrower' if ratio > 1 else 'wider'} than the model (another width or variant)",
        facts,
        causes,
        {x.key for x in body if any(c != md for c, md in zip(x.checkpoint, x.model, strict=False))},
    )


def _reads_the_image(m: Shaped) -> bool:
    """A conv taking 1-4 channels: the network's first layer (EDSR calls it `head`)."""
    return len(m.checkpoint) == 4 and m.checkpoint[1] in (1, 2, 3, 4)


FINDERS: tuple[Finder, ...] = (
    position_embedding,
    relative_position_table,
    input_channels,
    block_type,
    rpn_anchors,
    yolo_detect,
    vocabulary,
    width,
)
