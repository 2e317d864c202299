"""Historic wordings and paste noise: each old wording torch printed (quoted from real threads, the
thread in the comment) reads as the modern one, and is diagnosed as the modern one is."""

from __future__ import annotations

import pytest

from headfit.explain import explain
from headfit.explain.wording import REWORDINGS, modern_wording

# (old wording as pasted, the modern wording torch prints today for the same error)
HISTORIC = [
    pytest.param(  # https://github.com/okankop/MFF-pytorch/issues/5 (torch 0.4, TH)
        "invalid argument 2: size '[-1 x 8 x 256]' is invalid for input with 512 elements at "
        "/pytorch/torch/lib/TH/THStorage.c:37",
        "shape '[-1, 8, 256]' is invalid for input of size 512",
        id="view-th",
    ),
    pytest.param(  # https://github.com/pytorch/pytorch/pull/2658 (torch 0.2, the 'of with' typo)
        "size '[1 x 1 x 5]' is invalid for input of with 1 elements at /pytorch/torch/lib/TH/THStorage.c:41",
        "shape '[1, 1, 5]' is invalid for input of size 1",
        id="view-of-with",
    ),
    pytest.param(  # https://github.com/wujiyang/Face_Pytorch/issues/17 (torch < 1.7)
        "size mismatch, m1: [1 x 32768], m2: [25088 x 512] at "
        "/opt/conda/conda-bld/pytorch_1549628766161/work/aten/src/THC/generic/THCTensorMathBlas.cu:266",
        "mat1 and mat2 shapes cannot be multiplied (1x32768 and 25088x512)",
        id="matmul-m1-m2",
    ),
    pytest.param(  # torch 0.4, quoted in a code comment of a public repository
        "Given groups=1, weight[64, 3, 7, 7], so expected input[1, 224, 224, 3] to have 3 channels, "
        "but got 224 channels instead",
        "Given groups=1, weight of size [64, 3, 7, 7], expected input[1, 224, 224, 3] to have 3 channels, "
        "but got 224 channels instead",
        id="conv-weight-so-expected",
    ),
    pytest.param(  # torch 1.0 printed the weight's sizes with spaces
        "Expected 4-dimensional input for 4-dimensional weight 64 3 7 7, but got 3-dimensional input of "
        "size [3, 224, 224] instead",
        "Expected 4-dimensional input for 4-dimensional weight [64, 3, 7, 7], but got 3-dimensional input "
        "of size [3, 224, 224] instead",
        id="conv-rank-weight-spaces",
    ),
    pytest.param(  # torch 0.4.1 - 1.0 (pytorch/pytorch#12870 reworded it)
        "size mismatch for hidden_layers.0.weight: copying a param of torch.Size([400, 784]) from "
        "checkpoint, where the shape is torch.Size([512, 784]) in current model.",
        "size mismatch for hidden_layers.0.weight: copying a param with shape torch.Size([400, 784]) from "
        "checkpoint, the shape in current model is torch.Size([512, 784]).",
        id="state-dict-where-the-shape-is",
    ),
    pytest.param(  # https://github.com/sanghyun-son/EDSR-PyTorch/issues/321 (torch < 0.4.1)
        "While copying the parameter named head.0.weight, whose dimensions in the model are "
        "torch.Size([64, 3, 3, 3]) and whose dimensions in the checkpoint are torch.Size([256, 3, 3, 3]).",
        "size mismatch for head.0.weight: copying a param with shape torch.Size([256, 3, 3, 3]) from "
        "checkpoint, the shape in current model is torch.Size([64, 3, 3, 3]).",
        id="state-dict-while-copying",
    ),
    pytest.param(  # https://github.com/elnino9ykl/ERF-PSPNet/issues/3 (torch 1.x's '1only')
        "1only batches of spatial targets supported (non-empty 3D tensors) but got targets of size: : [4, 976]",
        "only batches of spatial targets supported (3D tensors) but got targets of size: : [4, 976]",
        id="spatial-target-1only",
    ),
    pytest.param(  # https://github.com/yatengLG/Focal-Loss-Pytorch/issues/17 (torch 1.0 - 1.3)
        "Expected object of backend CPU but got backend CUDA for argument #3 'index'",
        "Expected all tensors to be on the same device, but got index is on cuda, different from other "
        "tensors on cpu",
        id="device-backend",
    ),
    pytest.param(  # torch 1.3 - 1.6, quoted in public course notes
        "Expected object of device type cuda but got device type cpu for argument #1 'self' in call to _th_addmm",
        "Expected all tensors to be on the same device, but got self is on cpu, different from other "
        "tensors on cuda in call to _th_addmm",
        id="device-device-type",
    ),
    pytest.param(  # torch 1.x
        "expected device cuda:0 and dtype Long but got device cpu and dtype Long",
        "Expected all tensors to be on the same device, but found at least two devices, cuda:0 and cpu! "
        "and dtype Long",
        id="device-expected-device",
    ),
]


@pytest.mark.parametrize(("old", "modern"), HISTORIC)
def test_a_historic_wording_reads_as_the_modern_one(old, modern):
    assert modern_wording(old).text == modern


@pytest.mark.parametrize(("old", "modern"), HISTORIC)
def test_a_historic_wording_is_diagnosed_as_the_modern_one(old, modern):
    then, now = explain(old), explain(modern)
    assert then.code is not None and then.code == now.code
    assert then.summary == now.summary
    assert then.message == old  # the diagnosis quotes what was pasted
    assert any(f.startswith("read as the modern wording of this torch") for f in then.facts)


def test_every_rewording_is_exercised():
    kinds = {r.kind for r in REWORDINGS}
    read = {r.kind for param in HISTORIC for r in modern_wording(param.values[0]).read}
    assert kinds <= read | {"spatial_target", "device"}, kinds - read


# --- paste noise -------------------------------------------------------------------------------------


def test_the_cpp_stack_torch_appends_is_dropped():
    message = (
        "Expected all tensors to be on the same device, but found at least two devices, cuda:0 and cpu!\n"
        "Exception raised from check_device at ../aten/src/ATen/native/Foo.cpp:12 (most recent call first):\n"
        "frame #0: c10::Error::Error(c10::SourceLocation, std::string) + 0x42 (0x7f in libc10.so)"
    )
    assert modern_wording(message).text.endswith("cuda:0 and cpu!")
    assert explain("RuntimeError: " + message).code == "HF124"


def test_a_message_wrapped_by_a_terminal_is_one_line_again():
    wrapped = (
        "RuntimeError: Sizes of tensors must match except in dimension 1. Expected size 28 but got size\n"
        "29 for tensor number 1 in the list."
    )
    assert explain(wrapped).code == "HF108"
    assert "29 for tensor number 1" in modern_wording(wrapped).text


def test_the_items_of_a_state_dict_message_stay_one_a_line():
    message = (
        "Error(s) in loading state_dict for ResNet:\n"
        '\tMissing key(s) in state_dict: "fc.weight", "fc.bias".\n'
        '\tUnexpected key(s) in state_dict: "head.weight", "head.bias".'
    )
    assert modern_wording(message).text.count("\n") == 2


def test_a_markdown_fenced_paste_is_read_without_its_fences():
    text = "```python\nRuntimeError: mat1 and mat2 shapes cannot be multiplied (4x2048 and 512x10)\n```"
    d = explain(text)
    assert d.code == "HF103" and not d.message.endswith("`")


def test_only_a_path_after_at_is_a_source_location():
    assert modern_wording("the tensors at concatenated positions").text.endswith("concatenated positions")
    assert modern_wording("bad size at /pytorch/aten/src/TH/generic/THTensor.cpp:711").text == "bad size"
