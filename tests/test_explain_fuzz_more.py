"""Hypothesis: random numbers inside each HF108-HF124 message template. Never a crash, the expected code,
and every arithmetic fact true for the numbers drawn."""

from __future__ import annotations

import itertools
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from headfit.explain import explain

sizes = st.integers(min_value=0, max_value=10**7)
small = st.integers(min_value=1, max_value=4096)
shapes = st.lists(st.integers(min_value=0, max_value=5000), min_size=0, max_size=6)
FUZZ = settings(max_examples=60, deadline=None)


def sh(dims: list[int]) -> str:
    return "[" + ", ".join(map(str, dims)) + "]"


def check_products(d) -> None:
    """Every 'A = k x B' fact holds."""
    for fact in d.facts:
        for a, k, b in re.findall(r"\b([\d,]+) = (\d+) x ([\d,]+)\b", fact):
            assert int(a.replace(",", "")) == int(k) * int(b.replace(",", "")), fact


@FUZZ
@given(a=sizes, b=sizes, dim=st.integers(0, 8))
def test_broadcast(a, b, dim):
    d = explain(
        f"RuntimeError: The size of tensor a ({a}) must match the size of tensor b ({b}) at non-singleton dimension {dim}"
    )
    assert d.code in ("HF108", "HF121")
    check_products(d)


@FUZZ
@given(side_a=st.integers(2, 200), side_b=st.integers(2, 200))
def test_position_embedding_grids(side_a, side_b):
    a, b = side_a**2 + 1, side_b**2 + 1
    d = explain(
        f"RuntimeError: The size of tensor a ({a}) must match the size of tensor b ({b}) at non-singleton dimension 1"
    )
    if side_a == side_b:
        return
    assert d.code == "HF121"
    assert f"{a} tokens = {side_a}*{side_a} patches + 1" in "\n".join(d.facts)
    assert (
        f"{side_a * 16}x{side_a * 16} input against a position embedding for {side_b * 16}x{side_b * 16}"
        in "\n".join(d.facts)
    )


@FUZZ
@given(dim=st.integers(0, 4), x=sizes, y=sizes, n=st.integers(1, 9))
def test_cat(dim, x, y, n):
    d = explain(
        f"RuntimeError: Sizes of tensors must match except in dimension {dim}. Expected size {x} but got size {y} for tensor number {n} in the list."
    )
    assert d.code == "HF108"
    for odd, floor in re.findall(r"gives (\d+) // 2 = (\d+)", "\n".join(d.facts)):
        assert int(odd) // 2 == int(floor)


@FUZZ
@given(first=shapes, second=shapes)
def test_stack(first, second):
    d = explain(
        f"RuntimeError: stack expects each tensor to be equal size, but got {sh(first)} at entry 0 and {sh(second)} at entry 1"
    )
    assert d.code == "HF108"


@FUZZ
@given(target=shapes, sizes_=shapes, d_=st.integers(0, 6), x=sizes, y=sizes)
def test_expand(target, sizes_, d_, x, y):
    d = explain(
        f"RuntimeError: The expanded size of the tensor ({x}) must match the existing size ({y}) at non-singleton "
        f"dimension {d_}.  Target sizes: {sh(target)}.  Tensor sizes: {sh(sizes_)}"
    )
    assert d.code == "HF108"
    for cause in d.causes:
        m = re.match(r"x\.view\(([\d, ]*)\)\.expand", cause.fix or "")
        if m:  # the suggested view keeps the element count
            view = [int(v) for v in m[1].split(",")]
            assert eval("*".join(map(str, view)) or "1") == eval("*".join(map(str, sizes_)) or "1")


@FUZZ
@given(x=sizes, y=sizes)
def test_batch_size(x, y):
    d = explain(f"ValueError: Expected input batch_size ({x}) to match target batch_size ({y}).")
    assert d.code == "HF109"
    check_products(d)
    for k, s1, s2 in re.findall(r"(\d+) = (\d+)x(\d+)", "\n".join(d.facts)):
        assert int(k) == int(s1) * int(s2) and s1 == s2


@FUZZ
@given(label=st.integers(-(10**6), 10**6))
def test_target_out_of_bounds(label):
    d = explain(f"IndexError: Target {label} is out of bounds.")
    assert d.code == "HF110"
    if label >= 0:
        assert f"at least {label + 1} classes" in d.facts[0]


@FUZZ
@given(target=shapes, logits=shapes, new=st.booleans())
def test_bce_size(target, logits, new):
    if new:
        text = f"ValueError: Target size (torch.Size({sh(target)})) must be the same as input size (torch.Size({sh(logits)}))"
    else:
        text = f"ValueError: Using a target size (torch.Size({sh(target)})) that is different to the input size (torch.Size({sh(logits)})) is deprecated."
    assert explain(text).code == "HF112"


@FUZZ
@given(size=st.lists(small, min_size=1, max_size=3), kernel=st.lists(small, min_size=1, max_size=3))
def test_kernel_too_large(size, kernel):
    text = (
        f"RuntimeError: Calculated padded input size per channel: ({' x '.join(map(str, size))}). "
        f"Kernel size: ({' x '.join(map(str, kernel))}). Kernel size can't be greater than actual input size"
    )
    d = explain(text)
    if len(size) != len(kernel):
        return
    assert d.code == "HF113"
    for s, k, total in re.findall(r"(\d+)\*(\d+) = (\d+)", "\n".join(d.facts)):
        assert int(s) * int(k) == int(total)


@FUZZ
@given(c=small, h=st.integers(0, 64), w=st.integers(0, 64), oh=st.integers(-3, 0))
def test_output_too_small(c, h, w, oh):
    d = explain(
        f"RuntimeError: Given input size: ({c}x{h}x{w}). Calculated output size: ({c}x{oh}x{oh}). Output size is too small"
    )
    assert d.code == "HF113"
    for s, k, total in re.findall(r"(\d+)\*(\d+) = (\d+)", "\n".join(d.facts)):
        assert int(s) * int(k) == int(total)


@FUZZ
@given(shape=shapes)
def test_batchnorm_single_value(shape):
    d = explain(
        f"ValueError: Expected more than 1 value per channel when training, got input size torch.Size({sh(shape)})"
    )
    assert d.code == "HF114"
    for expr, value in re.findall(r"values per channel = ([\d*]+) = (\d+)", "\n".join(d.facts)):
        assert eval(expr) == int(value)


@FUZZ
@given(x=sizes, y=sizes, which=st.sampled_from(["mean", "var"]))
def test_running_stats(x, y, which):
    d = explain(f"RuntimeError: running_{which} should contain {x} elements not {y}")
    assert d.code == "HF115"
    assert f"input has {x} channels" in d.facts[0] and f"num_features={y}" in d.facts[0]


@FUZZ
@given(box=st.lists(st.floats(-1e4, 1e4, allow_nan=False), min_size=4, max_size=4), i=st.integers(0, 99))
def test_degenerate_box(box, i):
    text = f"AssertionError: All bounding boxes should have positive height and width. Found invalid box {box} for target at index {i}."
    d = explain(text)
    assert d.code == "HF116"


@FUZZ
@given(shape=shapes)
def test_boxes_shape(shape):
    assert (
        explain(
            f"AssertionError: Expected target boxes to be a tensor of shape [N, 4], got torch.Size({sh(shape)})."
        ).code
        == "HF116"
    )


@FUZZ
@given(
    param=st.sampled_from(["num_classes", "aux_loss", "num_keypoints"]),
    pinned=st.integers(0, 5000),
    got=st.integers(0, 5000),
)
def test_pinned(param, pinned, got):
    d = explain(f"ValueError: The parameter '{param}' expected value {pinned} but got {got} instead.")
    assert d.code == "HF117"


@FUZZ
@given(actual=sizes, split=st.lists(sizes, min_size=1, max_size=6), dim=st.integers(0, 3))
def test_split_sizes(actual, split, dim):
    d = explain(
        f"RuntimeError: split_with_sizes expects split_sizes to sum exactly to {actual} (input tensor's size at dimension {dim}), but got split_sizes={sh(split)}"
    )
    fpn_levels = (
        dim == 1 and 3 <= len(split) <= 6 and all(0 < b * 2 <= a for a, b in itertools.pairwise(split))
    )
    assert d.code == ("HF119" if fpn_levels else "HF108")  # RetinaNet/FCOS split by level, else any split
    assert f"= {sum(split):,}, but dimension {dim} has {actual:,}" in d.facts[0]


@FUZZ
@given(index=sizes, dim=st.integers(0, 3), size=sizes)
def test_roi_index(index, dim, size):
    d = explain(f"IndexError: index {index} is out of bounds for dimension {dim} with size {size}")
    assert d.code == "HF120"


@FUZZ
@given(length=st.integers(1, 10**5), chunk=st.integers(1, 512))
def test_einops_divide(length, chunk):
    text = (
        'EinopsError:  Error while processing rearrange-reduction pattern "b c (h p1) w -> b h w p1".\n'
        f" Input tensor shape: torch.Size([1, 3, {length}, 8]). Additional info: {{'p1': {chunk}}}.\n"
        f" Shape mismatch, can't divide axis of length {length} in chunks of {chunk}"
    )
    d = explain(text)
    assert d.code == "HF122"
    for value, k, c in re.findall(r"(\d+) = (\d+) x (\d+)", "\n".join(d.facts)):
        assert int(value) == int(k) * int(c) and int(c) == chunk
    near = re.findall(r"nearest lengths that divide: (\d+) = .* and (\d+) =", "\n".join(d.facts))
    if near:
        lower, upper = map(int, near[0])
        assert (
            lower % chunk == 0
            and upper % chunk == 0
            and upper >= length
            and (lower <= length or lower == chunk)
        )


DTYPES = st.sampled_from(
    ["Float", "Long", "Half", "Double", "BFloat16", "Int", "Byte", "Bool", "ComplexFloat"]
)


@FUZZ
@given(a=DTYPES, b=DTYPES)
def test_dtype_templates(a, b):
    for text in (
        f"RuntimeError: expected scalar type {a} but found {b}",
        f"RuntimeError: mat1 and mat2 must have the same dtype, but got {a} and {b}",
        f"RuntimeError: Found dtype {a} but expected {b}",
        f"RuntimeError: \"addmm_impl_cpu_\" not implemented for '{a}'",
    ):
        assert explain(text).code == "HF123", text


@FUZZ
@given(
    a=st.sampled_from(["cpu", "cuda:0", "cuda:1", "meta", "mps"]),
    b=st.sampled_from(["cpu", "cuda:0", "cuda:1", "meta", "mps"]),
)
def test_device_templates(a, b):
    d = explain(
        f"RuntimeError: Expected all tensors to be on the same device, but found at least two devices, {a} and {b}!"
    )
    assert d.code == "HF124" and f"`{a}`" in d.facts[0] and f"`{b}`" in d.facts[0]
