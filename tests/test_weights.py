"""load_weights: every checkpoint layout, prefix, mismatch and refusal, on a tiny real model."""

from __future__ import annotations

from collections import OrderedDict

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from headfit.errors import CheckpointError, UnsafeCheckpointError, UsageError
from headfit.render import render
from headfit.weights import LoadReport, file_sha256, load_weights


def tiny(num_classes: int = 5) -> nn.Module:
    torch.manual_seed(num_classes)
    return nn.Sequential(
        OrderedDict(
            conv=nn.Conv2d(3, 4, 3),
            bn=nn.BatchNorm2d(4),
            pool=nn.AdaptiveAvgPool2d(1),
            flat=nn.Flatten(),
            fc=nn.Linear(4, num_classes),
        )
    )


def assert_same_tensors(a: nn.Module, b: nn.Module, keys: list[str]) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    for k in keys:
        assert torch.equal(sa[k], sb[k]), k


def test_plain_state_dict_file_loads_everything(tmp_path):
    source = tiny()
    path = tmp_path / "w.pth"
    torch.save(source.state_dict(), path)
    target = tiny(5)
    target.fc.weight.data.zero_()

    report = load_weights(target, path)

    assert report.complete and not report.unexpected and report.stripped_prefix == ""
    assert sorted(report.loaded) == sorted(source.state_dict())
    assert report.sha256 == file_sha256(path)
    assert_same_tensors(source, target, list(source.state_dict()))


@pytest.mark.parametrize("prefix", ["module.", "model.", "_orig_mod.", "_orig_mod.module."])
def test_wrapper_prefixes_are_stripped_when_that_makes_keys_match(tmp_path, prefix):
    source = tiny()
    state = {prefix + k: v for k, v in source.state_dict().items()}
    target = tiny(5)

    report = load_weights(target, state)

    assert report.stripped_prefix == prefix
    assert len(report.loaded) == len(state) and not report.unexpected
    assert_same_tensors(source, target, list(source.state_dict()))


def test_a_prefix_that_is_part_of_the_model_is_kept():
    """A model whose own first module is called `model` keeps its `model.` keys."""
    source = nn.Sequential(OrderedDict(model=tiny()))
    target = nn.Sequential(OrderedDict(model=tiny(5)))

    report = load_weights(target, source.state_dict())

    assert report.stripped_prefix == "" and report.complete
    assert_same_tensors(source, target, list(source.state_dict()))


@pytest.mark.parametrize("entry", ["model", "state_dict", "model_state", "model_state_dict"])
def test_nested_training_checkpoints(tmp_path, entry):
    source = tiny()
    path = tmp_path / "ckpt.pt"
    torch.save({entry: source.state_dict(), "epoch": 7, "optimizer": {"lr": 0.1}}, path)
    target = tiny(5)

    report = load_weights(target, path)

    assert report.entry == entry and report.complete
    assert_same_tensors(source, target, list(source.state_dict()))


def test_ema_is_loaded_only_when_asked(tmp_path):
    raw, ema = tiny(5), tiny(5)
    with torch.no_grad():
        ema.fc.weight.add_(1.0)
    ckpt = {"state_dict": raw.state_dict(), "state_dict_ema": ema.state_dict()}

    default = tiny(5)
    report = load_weights(default, ckpt)
    assert report.entry == "state_dict"
    assert any("EMA" in n for n in report.notes)
    assert torch.equal(default.fc.weight, raw.fc.weight)

    chosen = tiny(5)
    report = load_weights(chosen, ckpt, ema=True)
    assert report.entry == "state_dict_ema"
    assert torch.equal(chosen.fc.weight, ema.fc.weight)


def test_ema_asked_but_absent_is_an_error():
    with pytest.raises(CheckpointError, match="no EMA entry"):
        load_weights(tiny(), {"model": tiny().state_dict()}, ema=True)


def test_old_head_is_skipped_with_both_shapes_and_the_rest_loads(tmp_path):
    coco = tiny(91)
    path = tmp_path / "coco.pth"
    torch.save(coco.state_dict(), path)
    target = tiny(3)
    head_before = target.fc.weight.clone()

    report = load_weights(target, path)

    skipped = {s.key: (s.checkpoint_shape, s.model_shape) for s in report.skipped}
    assert skipped == {"fc.weight": ([91, 4], [3, 4]), "fc.bias": ([91], [3])}
    assert torch.equal(target.fc.weight, head_before)
    body = [k for k in coco.state_dict() if not k.startswith("fc.")]
    assert sorted(report.loaded) == sorted(body)
    assert_same_tensors(coco, target, body)


def test_strict_head_refuses_shapes_that_do_not_fit():
    target = tiny(3)
    before = target.conv.weight.clone()
    with pytest.raises(CheckpointError, match=r"`fc.weight`: checkpoint \[91, 4\], model \[3, 4\]"):
        load_weights(target, tiny(91).state_dict(), strict_head=True)
    assert torch.equal(target.conv.weight, before), "nothing is loaded when the load is refused"


def test_missing_and_unexpected_keys_are_reported():
    state = tiny().state_dict()
    del state["bn.num_batches_tracked"]
    state["extra.weight"] = torch.zeros(2)

    report = load_weights(tiny(5), state)

    assert report.missing == ["bn.num_batches_tracked"] and report.missing_only_counters()
    assert report.unexpected == ["extra.weight"]


def test_zero_matching_tensors_is_an_error_not_a_random_model():
    other = nn.Sequential(nn.Linear(7, 7))
    with pytest.raises(CheckpointError, match="no tensor .* fits the model"):
        load_weights(tiny(), other.state_dict())


def test_safetensors_file(tmp_path):
    source = tiny()
    path = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(path))
    target = tiny(5)

    report = load_weights(target, path)

    assert report.complete
    assert_same_tensors(source, target, list(source.state_dict()))


def test_safetensors_content_is_recognised_whatever_the_suffix(tmp_path):
    source = tiny()
    path = tmp_path / "weights.bin"
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(path))
    assert load_weights(tiny(5), path).complete


class _CreatesAFile:
    """Unpickling this object would create a file: proof that a checkpoint ran code."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_a_pickle_that_would_run_code_is_refused_and_never_executed(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"model": tiny().state_dict(), "payload": _CreatesAFile(marker)}, path)

    with pytest.raises(UnsafeCheckpointError) as info:
        load_weights(tiny(), path)

    assert not marker.exists()
    message = str(info.value)
    assert "arbitrary code" in message and "weights_only=False" in message and "state_dict()" in message
    assert "\n" not in message


def test_a_full_module_pickle_is_refused(tmp_path):
    path = tmp_path / "full.pt"
    torch.save(tiny(), path)
    with pytest.raises(UnsafeCheckpointError, match="torch.save\\(model\\)"):
        load_weights(tiny(), path)


def test_a_file_that_is_no_checkpoint_is_unreadable_not_unsafe(tmp_path):
    path = tmp_path / "junk.pt"
    path.write_text("these are not weights")
    with pytest.raises(CheckpointError, match="cannot read"):
        load_weights(tiny(), path)


def _safetensors_bytes() -> bytes:
    from safetensors.torch import save

    return save({k: v.contiguous() for k, v in tiny().state_dict().items()})


@pytest.mark.parametrize(
    "damage",
    [
        lambda good: b"\x80" + bytes(range(256)) * 4,  # random bytes that start like a pickle
        lambda good: bytes(reversed(range(256))) * 4,
        lambda good: good[: len(good) // 2],  # a truncated safetensors file
        # a truncated safetensors file whose header length starts with a pickle's protocol byte
        lambda good: (0x80 + 256 * 400).to_bytes(8, "little") + b'{"a":' + b" " * 200,
        lambda good: b"PK\x03\x04" + b"\x00" * 500,  # a zip (torch.save) cut short
    ],
    ids=["pickle-like", "random", "truncated", "truncated-pickle-like-header", "truncated-zip"],
)
@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_a_corrupt_file_is_called_corrupt_never_unsafe(tmp_path, damage, suffix):
    path = tmp_path / f"damaged{suffix}"
    path.write_bytes(damage(_safetensors_bytes()))
    with pytest.raises(CheckpointError) as info:
        load_weights(tiny(), path)
    message = str(info.value)
    assert not isinstance(info.value, UnsafeCheckpointError)
    assert "corrupt or truncated" in message, message
    assert "arbitrary code" not in message and "weights_only=False" not in message


def test_an_empty_file_says_so(tmp_path):
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"is empty \(0 bytes\)"):
        load_weights(tiny(), tmp_path / "empty.pt")


def test_shapes_are_read_without_tensor_data(tmp_path):
    from headfit.weights import compare_shapes, tensor_shapes

    torch.save(tiny().state_dict(), tmp_path / "w.pt")
    (tmp_path / "w.safetensors").write_bytes(_safetensors_bytes())
    expected = {k: list(v.shape) for k, v in tiny().state_dict().items()}
    assert tensor_shapes(tmp_path / "w.pt") == expected == tensor_shapes(tmp_path / "w.safetensors")
    other = compare_shapes(tmp_path / "w.safetensors", tiny(7))
    assert not other.ok and [m.key for m in other.mismatched] == ["fc.weight", "fc.bias"]
    assert compare_shapes(tmp_path / "w.pt", tiny()).ok


def test_missing_file_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        load_weights(tiny(), tmp_path / "nope.pt")


def test_report_to_dict_and_table():
    from io import StringIO

    from rich.console import Console

    report = load_weights(tiny(3), {"module." + k: v for k, v in tiny(91).state_dict().items()})
    doc = report.to_dict()
    assert doc["stripped_prefix"] == "module."
    assert doc["skipped"][0] == {"key": "fc.weight", "checkpoint_shape": [91, 4], "model_shape": [3, 4]}
    assert isinstance(report, LoadReport)

    out = StringIO()
    Console(file=out, width=120).print(render(report))
    text = out.getvalue()
    assert "stripped prefix `module.`" in text and "fc.weight" in text and "[91, 4]" in text
