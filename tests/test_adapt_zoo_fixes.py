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
