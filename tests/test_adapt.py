"""adapt / adapt_with_report / rebuild: the machinery around a family's ``adapt``.

A tiny test-only family (it recognises only ``TinyNet``) makes every verification branch reachable:
each sabotage below is a real bug a family could have, and verification must name it.
"""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from adapt_support import SPEC, TinyFamily, TinyNet
from headfit.adapt import adapt, adapt_with_report
from headfit.classnames import read_name_list, resolve_keep, source_categories
from headfit.errors import ModelSpecError, UsageError, VerificationError
from headfit.saved import adapt_file, load_model, rebuild, sidecar_path
from headfit.weights import load_weights


@pytest.fixture(autouse=True)
def no_sabotage():
    TinyFamily.sabotage = None
    yield
    TinyFamily.sabotage = None


def tiny(num_classes: int = 10) -> TinyNet:
    torch.manual_seed(0)
    return TinyNet(num_classes)


def test_adapt_re_heads_in_place_and_keeps_everything_else():
    model = tiny()
    before = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith("fc.")}

    same, report = adapt_with_report(model, 3)

    assert same is model and model.fc.out_features == 3 and model.num_classes == 3
    assert report.replaced == ["fc"] and report.head_outputs == 3 and not report.background
    for key, value in before.items():
        assert torch.equal(model.state_dict()[key], value), key
    check = report.verification
    assert check.ok and check.output_classes == 3 and check.loss is not None
    assert any("unchanged" in s for s in check.steps) and any("get gradients" in s for s in check.steps)


def test_adapt_returns_the_model_only():
    model = tiny()
    assert adapt(model, 4) is model and model.fc.out_features == 4


def test_verification_leaves_the_model_as_it_was_apart_from_the_head():
    model = tiny()
    model.train()
    model.body.bn.eval()  # mixed modes, as frozen-BN recipes have
    model.body.conv.weight.grad = torch.full_like(model.body.conv.weight, 7.0)
    stats = (model.body.bn.running_mean.clone(), model.body.bn.num_batches_tracked.clone())
    torch.manual_seed(123)

    adapt(model, 3)
    after_adapt = torch.rand(3)
    torch.manual_seed(123)
    # the smoke step draws random inputs inside a forked RNG: the user's stream is untouched
    # (the family's own init of the new layer draws as torchvision's builders do, so re-create that)
    nn.Linear(8, 3)

    assert torch.equal(torch.rand(3), after_adapt)
    assert model.training and not model.body.bn.training and model.body.conv.training
    assert torch.equal(model.body.bn.running_mean, stats[0])
    assert torch.equal(model.body.bn.num_batches_tracked, stats[1])
    assert torch.equal(model.body.conv.weight.grad, torch.full_like(model.body.conv.weight, 7.0))
    assert model.fc.weight.grad is None


def test_keep_classes_by_id_copy_the_pretrained_rows():
    model = tiny()
    old_w, old_b = model.fc.weight.detach().clone(), model.fc.bias.detach().clone()

    report = adapt_with_report(model, 2, keep_classes=[7, "2"])[1]

    assert report.kept_classes == [7, 2]
    assert torch.equal(model.fc.weight, old_w[[7, 2]]) and torch.equal(model.fc.bias, old_b[[7, 2]])


def test_keep_classes_by_name_use_the_source_names_and_become_class_names():
    names = [f"class {i}" for i in range(10)]
    model = tiny()
    report = adapt_with_report(model, 2, keep_classes=["class_4", "Class 1"], source_names=names)[1]
    assert report.kept_classes == [4, 1] and report.class_names == ["class 4", "class 1"]


def test_unknown_class_name_lists_close_matches():
    names = ["person", "bicycle", "car"] + [f"x{i}" for i in range(7)]
    with pytest.raises(UsageError, match=r"no class named 'persn'.*'person'"):
        adapt(tiny(), 1, keep_classes=["persn"], source_names=names)


def test_keep_classes_must_give_one_class_per_new_class():
    with pytest.raises(UsageError, match="lists 1 classes but you asked for 2"):
        adapt(tiny(), 2, keep_classes=[1])


def test_keep_class_id_outside_the_pretrained_head():
    with pytest.raises(UsageError, match=r"class id 10 is outside .* 10 outputs"):
        adapt(tiny(), 1, keep_classes=[10])


def test_class_names_must_match_the_class_count():
    with pytest.raises(UsageError, match="2 class names given for 3 classes"):
        adapt(tiny(), 3, class_names=["a", "b"])


@pytest.mark.parametrize("bad", [0, -1, 2.5, True, "3"])
def test_num_classes_must_be_a_positive_whole_number(bad):
    with pytest.raises(UsageError, match="whole number >= 1"):
        adapt(tiny(), bad)


def test_options_the_family_does_not_take_are_usage_errors():
    with pytest.raises(UsageError, match="does not understand"):
        adapt(tiny(), 3, num_keypoints=5)


@pytest.mark.parametrize(
    ("sabotage", "why"),
    [
        ("touch_body", r"1 tensor\(s\) outside the replaced layers changed, e.g. `body.conv.weight`"),
        ("frozen_head", r"the new parameter `fc.weight` is frozen \(and 1 more\)"),
        ("nan_head", r"the train step's loss is nan"),
        ("miscounted", r"eval outputs carry 3 classes, the head should give 4"),
    ],
)
def test_verification_names_what_a_faulty_family_got_wrong(sabotage, why):
    TinyFamily.sabotage = sabotage
    with pytest.raises(VerificationError, match=why) as info:
        adapt(tiny(), 3)
    assert info.value.exit_code == 1


def test_verification_can_be_skipped():
    TinyFamily.sabotage = "touch_body"
    _, report = adapt_with_report(tiny(), 3, verify=False)
    assert report.verification is not None and not report.verification.ok  # recorded, not raised


def test_adapt_file_saves_weights_and_sidecar_and_rebuild_restores_the_model(tmp_path):
    pretrained = tmp_path / "pretrained.pt"
    torch.save({"state_dict": {"module." + k: v for k, v in tiny().state_dict().items()}}, pretrained)
    out = tmp_path / "out" / "tiny3.safetensors"

    run = adapt_file(SPEC, 3, out, weights=pretrained, keep_classes=[1, 2, 3], class_names=["a", "b", "c"])

    assert run.output == out and run.sidecar == sidecar_path(out) and out.is_file()
    assert run.load.stripped_prefix == "module." and run.load.entry == "state_dict"
    assert [s.key for s in run.load.skipped] == []
    doc = json.loads(run.sidecar.read_text())
    assert doc["model"] == SPEC and doc["num_classes"] == 3 and doc["head_outputs"] == 3
    assert doc["class_names"] == ["a", "b", "c"] and doc["kept_classes"] == [1, 2, 3]
    assert doc["source_checkpoint"]["sha256"] == run.load.sha256 and doc["replaced"] == ["fc"]

    rebuilt = rebuild(out, trust_code=True)
    original = tiny()
    assert rebuilt.fc.out_features == 3
    assert torch.equal(rebuilt.body.conv.weight, original.body.conv.weight)
    assert torch.equal(rebuilt.fc.weight, original.fc.weight[[1, 2, 3]])
    assert type(load_model(str(out), trust_code=True)) is TinyNet
    meta = load_model(str(out), device="meta", trust_code=True)
    assert meta.fc.weight.device.type == "meta" and meta.fc.out_features == 3


def test_pt_format_round_trips(tmp_path):
    out = tmp_path / "tiny3.pt"
    adapt_file(SPEC, 3, out)
    assert isinstance(torch.load(out, weights_only=True), dict)
    assert rebuild(sidecar_path(out), trust_code=True).fc.out_features == 3


def test_failed_verification_writes_nothing(tmp_path):
    TinyFamily.sabotage = "touch_body"
    run = adapt_file(SPEC, 3, tmp_path / "x.safetensors")
    assert run.output is None and not (tmp_path / "x.safetensors").exists()


def test_format_and_suffix_must_agree(tmp_path):
    with pytest.raises(UsageError, match="does not match the output name"):
        adapt_file(SPEC, 3, tmp_path / "x.pt", fmt="safetensors")


def test_weights_without_a_sidecar_cannot_be_rebuilt(tmp_path):
    lone = tmp_path / "lone.safetensors"
    adapt_file(SPEC, 3, lone)
    sidecar_path(lone).unlink()
    with pytest.raises(ModelSpecError, match="has no sidecar"):
        load_model(str(lone), trust_code=True)


def test_rebuilt_class_count_must_match_num_classes(tmp_path):
    out = tmp_path / "t.safetensors"
    adapt_file(SPEC, 3, out)
    with pytest.raises(ModelSpecError, match="saved for 3 classes, not 5"):
        load_model(str(out), num_classes=5, trust_code=True)


def test_load_weights_strict_into_a_rebuilt_model(tmp_path):
    out = tmp_path / "t.safetensors"
    adapt_file(SPEC, 3, out)
    report = load_weights(rebuild(out, trust_code=True), out, strict_head=True)
    assert report.complete and not report.unexpected


def test_coco_names_resolve_to_the_pretrained_rows():
    coco = source_categories(91)
    assert coco[0] == "__background__" and len(coco) == 91
    assert resolve_keep(["person", "car", "traffic_light"], coco, 91, counts_background=True) == [1, 3, 10]
    assert len(source_categories(1000)) == 1000 and source_categories(21)[15] == "person"
    assert source_categories(7) is None


def test_the_background_row_cannot_be_kept_as_a_class():
    with pytest.raises(UsageError, match="background row"):
        resolve_keep([0, 1], source_categories(91), 91, counts_background=True)


def test_placeholder_names_are_not_classes():
    with pytest.raises(UsageError, match="no class named 'N/A'"):
        resolve_keep(["N/A"], source_categories(91), 91, counts_background=True)


def test_ambiguous_names_ask_for_an_id():
    names = ["cat", "crane", "dog", "crane"]
    with pytest.raises(UsageError, match=r"'crane' is ambiguous in this head \(ids 1, 3\)"):
        resolve_keep(["crane"], names, 4, counts_background=False)


def test_name_lists_from_text_and_files(tmp_path):
    path = tmp_path / "names.txt"
    path.write_text("cat\ndog, bird\n\n")
    assert read_name_list("a, b,c") == ["a", "b", "c"]
    assert read_name_list(f"@{path}") == ["cat", "dog", "bird"]
    with pytest.raises(UsageError, match="does not exist"):
        read_name_list(f"@{tmp_path / 'nope.txt'}")
