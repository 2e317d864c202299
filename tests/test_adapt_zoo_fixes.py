"""Regressions found by the full adapt sweep (``HEADFIT_FULL_SWEEP=1 pytest tests/test_adapt_sweep.py``).

Each test reproduces one failure the sweep found, on the smallest model that shows it.
"""

from __future__ import annotations

import pytest
import torch
import torchvision
from safetensors.torch import save_file

from headfit.weights import load_weights


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_mnasnet_loads_a_checkpoint_without_module_versions(suffix, tmp_path):
    """MNASNet refuses a state_dict without `_metadata` versions; safetensors files never carry any."""
    source = torchvision.models.mnasnet0_5(weights=None)
    state = {k: v.clone() for k, v in source.state_dict().items()}  # a plain dict: no `_metadata`
    path = tmp_path / f"mnasnet{suffix}"
    save_file(state, str(path)) if suffix == ".safetensors" else torch.save(state, path)
    model = torchvision.models.mnasnet0_5(weights=None)

    report = load_weights(model, path)

    assert report.complete
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())


@pytest.mark.parametrize("builder", ["swin3d_t", "r2plus1d_18", "s3d", "mvit_v1_b"])
def test_a_video_smoke_step_runs_one_short_clip_the_model_accepts(builder):
    """The smoke step once ran Swin3D on 2 clips of 16x224x224 (25 s on a CPU); one short clip is enough."""
    from headfit.families import family_for

    with torch.device("meta"):
        model = torchvision.models.get_model(builder, weights=None)
    family = family_for(model)

    (clip,) = family.smoke_batch(model, 3).args

    N, C, T, H, W = clip.shape
    assert N == 1 and C == 3
    assert model(clip).shape == (1, 400)  # the meta forward shows the model accepts it
    if builder in ("swin3d_t", "r2plus1d_18"):  # adaptive pooling: any clip works, so a small one
        assert T * H * W <= 8 * 64 * 64


@pytest.mark.slow  # 15 s here (pytest --durations, -n 2)
def test_timm_inception_smoke_input_is_one_the_model_accepts():
    """timm's Inception v3 reduces 32x but its unpadded stem needs 75 px: 64x64 used to fail the step."""
    timm = pytest.importorskip("timm")
    from headfit.families import family_for
    from headfit.smoke import smoke_input_spec

    with torch.device("meta"):
        model = timm.create_model("inception_v3")
    model.train()

    spec = smoke_input_spec(family_for(model), model)

    (shape,) = spec.shapes
    assert shape[0] == 2 and shape[-1] >= 75
    model(spec.make("meta"))  # raises "Kernel size can't be greater than actual input size" when too small


def test_timm_smoke_input_stays_small_where_the_model_allows():
    timm = pytest.importorskip("timm")
    from headfit.families import family_for
    from headfit.smoke import SMOKE_SIZE, smoke_input_spec

    with torch.device("meta"):
        model = timm.create_model("resnet18")

    assert smoke_input_spec(family_for(model), model).shapes == ((2, 3, SMOKE_SIZE, SMOKE_SIZE),)


def test_tresnet_default_input_has_the_image_channels_not_the_space_to_depth_ones():
    """TResNet's first conv takes 48 channels after its 4x4 space-to-depth stem; the image has 3."""
    timm = pytest.importorskip("timm")
    from headfit.check import check
    from headfit.families import family_for

    with torch.device("meta"):
        model = timm.create_model("tresnet_m")

    (spec,) = family_for(model).default_inputs(model)

    assert spec.shapes[0][1] == 3
    assert check(model).ok
