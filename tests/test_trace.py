"""The meta-device shape trace: a storage-free replica, per-module records, the failing module, and the
data-dependent operations of detection post-processing."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from headfit.families import family_for
from headfit.trace import DATA_DEPENDENT_NOTE, is_data_dependent, meta_replica, shapes_of, trace


class SmallNet(nn.Module):
    def __init__(self, classes: int = 5) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, classes)
        self.register_buffer("scale", torch.ones(1))
        self.cached = torch.zeros(3)  # a plain tensor attribute, as cached anchors are

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.features(x)).flatten(1)) * self.scale


class Nested(nn.Module):
    """``block.fc`` is sized for 16 features but the block's conv gives 8."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3)
        self.block = nn.Sequential()
        self.block.add_module("pool", nn.AdaptiveAvgPool2d(1))
        self.block.add_module("flat", nn.Flatten())
        self.block.add_module("fc", nn.Linear(16, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(self.stem(x))


class _CpuOps(TorchDispatchMode):
    """Records every op that makes a tensor outside the meta device (that is, allocates memory)."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        leaves = torch.utils._pytree.tree_leaves(out)
        if any(isinstance(t, torch.Tensor) and not t.is_meta for t in leaves):
            self.ops.append(str(func))
        return out


def test_replica_allocates_nothing_and_shares_no_storage():
    model = torchvision.models.resnet18(weights=None)
    model.layer4[0].conv1.weight.requires_grad_(False)
    with _CpuOps() as ops:
        replica = meta_replica(model)
    assert ops.ops == []
    originals = dict(model.named_parameters()) | dict(model.named_buffers())
    copies = dict(replica.named_parameters()) | dict(replica.named_buffers())
    assert originals.keys() == copies.keys()
    for name, tensor in copies.items():
        assert (
            tensor.is_meta and tensor.shape == originals[name].shape and tensor.dtype == originals[name].dtype
        )
        assert tensor.requires_grad == originals[name].requires_grad, name
        assert tensor is not originals[name]
    assert isinstance(replica.fc.weight, nn.Parameter)


def test_uncopyable_attributes_are_shared_not_copied():
    import threading

    model = SmallNet()
    model.lock = threading.Lock()
    model.settings = {"scale": 2}
    replica = meta_replica(model)
    assert replica.lock is model.lock  # a lock cannot be deep-copied
    assert replica.settings == model.settings and replica.settings is not model.settings
    assert trace(model, (torch.empty(1, 3, 8, 8),)).completed


def test_plain_tensor_attributes_become_meta_too():
    replica = meta_replica(SmallNet())
    assert replica.cached.is_meta and replica.scale.is_meta


def test_tensors_in_plain_lists_and_dicts_are_never_copied(monkeypatch):
    """A model holding 64 MB in a dict of lists (cached anchors per image size): the replica holds meta
    tensors in their place, and not one tensor's data is deep-copied, whatever check traces."""
    import headfit

    model = SmallNet()
    model.anchors = {"800x1333": [torch.zeros(1024, 1024), torch.zeros(1024, 1024)], "nested": {"k": (torch.zeros(4),)}}
    model.bank = [torch.zeros(2048, 2048), [torch.zeros(1024, 1024)]]
    copied: list[tuple[int, ...]] = []
    deepcopy = torch.Tensor.__deepcopy__

    def counting(self, memo):
        if not self.is_meta:
            copied.append(tuple(self.shape))
        return deepcopy(self, memo)

    monkeypatch.setattr(torch.Tensor, "__deepcopy__", counting)
    replica = meta_replica(model)
    assert replica.anchors["800x1333"][0].is_meta and replica.anchors["nested"]["k"][0].is_meta
    assert replica.bank[0].is_meta and replica.bank[1][0].is_meta
    assert model.bank[0].device.type == "cpu"  # the user's model is untouched
    assert headfit.check(model, "1x3x8x8").ok
    assert copied == []


def test_records_paths_shapes_and_own_parameters():
    model = SmallNet()
    result = trace(model, (torch.empty(2, 3, 16, 16),))
    assert result.completed and not result.failed
    calls = {c.module: c for c in result.calls}
    assert set(calls) == {name for name, _ in model.named_modules()}
    conv = calls["features.0"]
    assert (conv.type, conv.input_shapes, conv.output_shapes) == (
        "Conv2d",
        [[2, 3, 16, 16]],
        [[2, 8, 16, 16]],
    )
    assert conv.params == 8 * 3 * 3 * 3 + 8
    assert calls["features"].params == conv.params + 2 * 8  # children count: conv and BatchNorm's affine
    assert calls[""].params == sum(p.numel() for p in model.parameters())
    assert calls["fc"].output_shapes == [[2, 5]]
    assert result.output.shape == (2, 5) and result.output.is_meta


def test_innermost_running_module_is_where_it_stopped():
    result = trace(Nested(), (torch.empty(1, 3, 10, 10),))
    assert result.failed and not result.completed
    assert result.stopped_at == "block.fc"
    assert result.stopped_call().input_shapes == [[1, 8]]
    assert isinstance(result.error, RuntimeError)
    assert "RuntimeError" in result.reason


def test_a_caught_error_of_a_child_does_not_hide_where_the_forward_failed():
    class Fallback(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bad = nn.Linear(7, 2)
            self.good = nn.Linear(4, 2)

        def forward(self, x):
            try:
                y = self.bad(x)
            except RuntimeError:
                y = self.good(x)
            return y.view(3, -1)  # 2x2 does not fill 3 rows: raised by the model itself

    result = trace(Fallback(), (torch.empty(2, 4),))
    assert result.failed and result.stopped_at == ""
    assert [c.module for c in result.calls] == ["", "bad", "good"]
    assert result.stopped_call().input_shapes == [[2, 4]]


class Filtering(nn.Module):
    """A head, then value-dependent post-processing (a boolean mask, then ``.item()``)."""

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Linear(4, 3)
        self.late = nn.Linear(3, 3)

    def forward(self, x):
        scores = self.head(x)
        kept = scores[scores > 0]  # meta keeps every element
        if kept.numel() and kept.max().item() > 0.5:  # needs values
            return self.late(scores)
        return kept


def test_data_dependent_ops_after_the_heads_complete_the_trace():
    result = trace(Filtering(), (torch.empty(2, 4),), head_paths=["head"])
    assert result.completed and not result.failed
    assert DATA_DEPENDENT_NOTE in result.notes


def test_data_dependent_ops_before_a_head_leave_the_trace_incomplete_but_not_failed():
    result = trace(Filtering(), (torch.empty(2, 4),), head_paths=["head", "late"])
    assert not result.completed and not result.failed
    assert "`late`" in result.reason and result.error is None


@pytest.mark.parametrize(
    "op",
    [lambda t: t.sum().item(), lambda t: t.tolist(), lambda t: bool(t.sum() > 0)],
    ids=["item", "tolist", "bool"],
)
def test_meta_value_errors_are_recognised_as_data_dependent(op):
    with pytest.raises(Exception) as info:
        op(torch.empty(3, device="meta"))
    assert is_data_dependent(info.value)
    assert not is_data_dependent(RuntimeError("mat1 and mat2 shapes cannot be multiplied (2x8 and 16x4)"))


def test_torchscript_children_run_unrecorded_with_a_note():
    model = nn.Sequential(torch.jit.script(nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())), nn.Flatten())
    result = trace(model, (torch.empty(1, 3, 8, 8),))
    assert result.completed, result.reason
    assert result.output.shape == (1, 4 * 6 * 6)
    assert any("`model[0]` is TorchScript" in n for n in result.notes)
    assert {c.module for c in result.calls} == {"", "1"}


def test_a_scripted_model_is_traced_as_one_call():
    model = torch.jit.script(torchvision.models.resnet18(weights=None, num_classes=3))
    result = trace(model, (torch.empty(1, 3, 64, 64),))
    assert result.completed and result.output.shape == (1, 3)
    assert result.notes == ["`<model>` is TorchScript: its insides were run but not recorded"]
    assert all(p.is_meta for p in meta_replica(model).parameters())


def test_a_compiled_model_is_traced_eagerly_with_the_users_paths():
    model = torch.compile(nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(5, 2)))
    result = trace(model, (torch.empty(2, 3),))
    assert result.failed and result.stopped_at == "_orig_mod.2"  # as in model.named_modules()
    assert result.stopped_call().input_shapes == [[2, 4]]
    assert any("torch.compile" in n for n in result.notes)


def test_old_style_weight_norm_keeps_its_hook_and_user_hooks_are_dropped():
    seen = []
    layer = nn.utils.weight_norm(nn.Linear(4, 3))
    layer.register_forward_hook(lambda m, i, o: seen.append(o))
    replica = meta_replica(layer)
    assert len(replica._forward_pre_hooks) == 1 and len(replica._forward_hooks) == 0
    assert len(layer._forward_hooks) == 1
    result = trace(layer, (torch.empty(2, 4),))
    assert result.completed and result.output.shape == (2, 3) and seen == []


def test_dict_and_tuple_inputs():
    class TwoInputs(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.image = nn.Conv2d(3, 4, 1)
            self.text = nn.Embedding(10, 4)

        def forward(self, batch: dict, extra: tuple):
            return self.image(batch["image"]).mean((2, 3)) + self.text(batch["tokens"]).mean(1) + extra[0]

    batch = {"image": torch.rand(2, 3, 5, 5), "tokens": torch.zeros(2, 7, dtype=torch.long)}
    result = trace(TwoInputs(), (batch, (torch.zeros(2, 4),)))
    assert result.completed, result.reason
    assert {c.module: c.input_shapes for c in result.calls}["text"] == [[2, 7]]
    assert shapes_of(batch) == [[2, 3, 5, 5], [2, 7]]


def test_train_mode_batchnorm_runs_on_the_replica_only():
    model = SmallNet().eval()
    before = model.features[1].running_mean.clone()
    result = trace(model, (torch.empty(4, 3, 8, 8),), train=True)
    assert result.completed
    assert not model.training and torch.equal(model.features[1].running_mean, before)
    assert int(model.features[1].num_batches_tracked) == 0


@pytest.mark.parametrize(
    "name",
    ["fasterrcnn_mobilenet_v3_large_320_fpn", "maskrcnn_resnet50_fpn", "ssdlite320_mobilenet_v3_large"],
)
def test_healthy_detectors_trace_through_every_head(name):
    with torch.device("meta"):
        model = torchvision.models.get_model(name, weights=None, weights_backbone=None)
    heads = [h.path for h in family_for(model).heads(model)]
    assert heads
    result = trace(model, ([torch.empty(3, 320, 400)],), head_paths=heads)
    assert result.completed and not result.failed, result.reason
    ran = {c.module for c in result.calls if c.returned}
    assert all(any(m == h or m.startswith(h + ".") for m in ran) for h in heads)


def test_seed_fcos_raises_in_the_classification_head():
    with torch.device("meta"):
        model = torchvision.models.detection.fcos_resnet50_fpn(weights=None, weights_backbone=None)
    model.head.classification_head.cls_logits = nn.Conv2d(256, 2, 3, 1, 1, device="meta")
    result = trace(model, ([torch.empty(3, 1333, 762)] * 2,))
    assert result.failed and result.stopped_at == "head.classification_head"
    assert "shape '[2, -1, 91, 168, 96]' is invalid for input of size 64512" in result.reason
    assert result.stopped_call().input_shapes[0] == [2, 256, 168, 96]
    transform = next(c for c in result.calls if c.module == "transform")
    assert transform.output_shapes[0] == [2, 3, 1344, 768]  # resized and padded to multiples of 32
    assert not hasattr(result, "diagnosis")  # the tracer records; `check` explains (test_check.py)
