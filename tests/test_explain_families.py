"""HF125-HF129 and HF137, the error families explain's second depth names: each message is produced by
running the faulty torch/torchvision code here (so the wordings stay true to the installed versions),
then diagnosed from the exception and from its pasted traceback."""

from __future__ import annotations

import traceback

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from explain_support import raised
from headfit.explain import explain

pytestmark = pytest.mark.filterwarnings("ignore")


def both(fn):
    """The diagnoses of the live exception and of its pasted traceback agree on the code and the top fix."""
    exc = raised(fn).exception
    live, pasted = explain(exc), explain("".join(traceback.format_exception(exc)))
    assert (live.code, live.causes[0].fix) == (pasted.code, pasted.causes[0].fix)
    return pasted


def facts(d) -> str:
    return "\n".join(d.facts)


# --- HF125 recurrent layers ----------------------------------------------------------------------


def test_rnn_input_width_names_the_encoder_widths():
    d = both(lambda: nn.LSTM(1024, 64)(torch.zeros(5, 2, 768)))
    assert (d.code, d.category) == ("HF125", "recurrent_shape")
    assert "768 = BERT-base" in facts(d) and "1024 = BERT-large" in facts(d)
    assert d.causes[-1].attribute == "input_size" and "loses its input weights" in d.causes[-1].summary


def test_rnn_hidden_state_written_for_one_layer():
    lstm = nn.LSTM(10, 20, num_layers=2)
    d = both(lambda: lstm(torch.zeros(5, 3, 10), (torch.zeros(1, 3, 20), torch.zeros(1, 3, 20))))
    assert d.code == "HF125"
    assert "dim 0: 1 for num_layers * num_directions, the layer needs 2" in facts(d)
    assert (
        d.causes[0].attribute == "num_layers"
        and "self.num_layers * (2 if self.bidirectional" in d.causes[0].fix
    )


def test_rnn_hidden_state_batch_names_the_fixed_batch_and_batch_first():
    gru = nn.GRU(10, 20)
    d = both(lambda: gru(torch.zeros(5, 3, 10), torch.zeros(1, 8, 20)))
    assert "the input has 3 sequences, h0 was made for 8" in facts(d)
    assert "fixed batch size (8)" in d.causes[0].summary
    assert any(c.attribute == "batch_first" for c in d.causes)
    assert any("drop_last=True" in (c.fix or "") for c in d.causes)


def test_rnn_hidden_without_the_layers_axis():
    d = explain("RuntimeError: Expected hidden[0] size (1, 64, 256), got (64, 256)")
    assert d.code == "HF125" and "unsqueeze(0)" in d.causes[0].fix


def test_rnn_four_dimensional_input():
    d = both(lambda: nn.LSTM(8, 4, batch_first=True)(torch.zeros(2, 8, 4, 4)))
    assert d.code == "HF125" and "flatten(2).transpose(1, 2)" in d.causes[0].fix


# --- HF126 / HF127 class targets -----------------------------------------------------------------


def test_mask_with_a_channel_axis():
    d = both(lambda: F.cross_entropy(torch.zeros(2, 3, 8, 8), torch.zeros(2, 1, 8, 8, dtype=torch.long)))
    assert (d.code, d.category) == ("HF126", "loss_target_shape")
    assert "squeeze(1)" in d.causes[0].fix


def test_rgb_mask_from_the_size():
    d = explain(
        "RuntimeError: only batches of spatial targets supported (3D tensors) but got targets of size: : [2, 512, 512, 3]"
    )
    assert d.code == "HF126" and "colour" in d.causes[0].summary
    assert "3 values per pixel in the last axis" in facts(d)


def test_logits_at_the_output_stride():
    d = both(lambda: F.cross_entropy(torch.zeros(2, 3, 16, 16), torch.zeros(2, 64, 64, dtype=torch.long)))
    assert "64 = 4 x 16" in facts(d) and "F.interpolate" in d.causes[0].fix


def test_sequence_logits_with_the_class_axis_last():
    logits, target = torch.zeros(2, 7, 5), torch.zeros(2, 7, dtype=torch.long)  # [N, L, C] and [N, L]
    d = both(lambda: F.cross_entropy(logits, target))
    assert d.code == "HF126" and "permute(0, 2, 1)" in d.causes[0].fix


@pytest.mark.parametrize(
    ("labels", "fix"),
    [(torch.tensor([0.0, 2.0]), ".long()"), (torch.tensor([0, 5]), "num_classes=int(t.max()) + 1")],
)
def test_one_hot_inputs(labels, fix):
    d = both(lambda: F.one_hot(labels, 3) if labels.dtype == torch.long else F.one_hot(labels))
    assert (d.code, d.category) == ("HF127", "one_hot_input")
    assert fix in d.causes[0].fix


# --- HF128 writes into a tensor ------------------------------------------------------------------


def test_grayscale_through_an_rgb_normalize():
    from torchvision import transforms

    normalize = transforms.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    d = both(lambda: normalize(torch.zeros(1, 28, 28)))
    assert (d.code, d.category) == ("HF128", "assignment_size_mismatch")
    assert "traceback shows torchvision's Normalize" in facts(d)
    assert "Normalize((0.5,), (0.5,))" in d.causes[0].fix


def test_slice_assignment_is_not_an_expand():
    x = torch.zeros(2, 4)

    def assign():
        x[:, :3] = torch.ones(2, 4)

    d = both(assign)
    assert d.code == "HF128"
    assert "traceback shows an assignment: `x[:, :3] = torch.ones(2, 4)`" in facts(d)


def test_mask_assignment():
    y = torch.zeros(5)

    def assign():
        y[torch.tensor([True, False, True, False, True])] = torch.ones(2)

    d = both(assign)
    assert d.code == "HF128" and "picks 3 elements; 2 values" in facts(d)


# --- HF129 windowed transformers -----------------------------------------------------------------


def test_window_partition_view_decoded():
    x = torch.zeros(1, 55, 55, 96)
    d = both(lambda: x.view(1, 55 // 7, 7, 55 // 7, 7, 96))
    assert (d.code, d.category) == ("HF129", "token_grid_mismatch")
    assert "290,400 / (1*96) = 3,025 tokens per image = 55x55" in facts(d)
    assert "55 is not a multiple of the window 7: 49 or 56 would be" in facts(d)


def test_swin_patch_merging_assertion_quoted():
    # microsoft/Swin-Transformer's PatchMerging (not installed here), as its users paste it
    d = explain(
        '    assert H % 2 == 0 and W % 2 == 0, f"x size ({H}*{W}) are not even."\nAssertionError: x size (7*7) are not even.'
    )
    assert d.code == "HF129" and "multiple of 224" in d.causes[0].fix


# --- HF137 / HF116 what a detector is given ------------------------------------------------------


@pytest.fixture(scope="module")
def detector():
    from torchvision.models.detection import fasterrcnn_mobilenet_v3_large_320_fpn

    torch.manual_seed(0)
    return fasterrcnn_mobilenet_v3_large_320_fpn(
        weights=None, weights_backbone=None, num_classes=3, min_size=64, max_size=64
    )


BOX = torch.tensor([[4.0, 4.0, 40.0, 40.0]])


def test_channels_last_image_into_a_detector_is_not_a_batch_size(detector):
    d = both(lambda: detector.eval()([torch.rand(64, 48, 3)]))
    assert (d.code, d.category) == ("HF137", "detection_images_invalid")
    assert d.causes[0].fix.startswith("image = image.permute(2, 0, 1)")
    assert not any("drop_last" in (c.fix or "") for c in d.causes)


def test_a_batch_inside_the_list(detector):
    d = both(lambda: detector.eval()([torch.rand(2, 3, 64, 64)]))
    assert d.code == "HF137" and "model(list(images))" in d.causes[0].fix


@pytest.mark.parametrize(
    ("targets", "fix"),
    [
        ({"boxes": BOX, "labels": torch.tensor([1])}, "model(images, [target])"),
        ([[{"bbox": [4, 4, 36, 36], "category_id": 1}]], "targets = [{'boxes'"),
        ([{"bbox": BOX, "category_id": torch.tensor([1])}], "box_convert"),
        ([{"boxes": BOX, "labels": torch.tensor([1.0])}], "dtype=torch.int64"),
    ],
    ids=["one-dict", "per-object-lists", "coco-keys", "float-labels"],
)
def test_targets_as_users_build_them(detector, targets, fix):
    d = both(lambda: detector.train()([torch.rand(3, 64, 64)], targets))
    assert d.code == "HF116"
    assert fix in d.causes[0].fix


def test_a_python_error_outside_detection_is_not_a_target_error():
    def index():
        return "abc"["x"]

    assert explain(raised(index).exception).code is None
