"""The live hooks in-process: ``diagnose_exception``, ``diagnosing()``, ``install()`` and import discipline."""

from __future__ import annotations

import io
import subprocess
import sys
import textwrap

import pytest
import torch
from torch import nn

from headfit.live import diagnose_exception, diagnosing
from run_support import raised


class Tower(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU())
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(100, 4))

    def forward(self, x):
        return self.head(self.stem(x))


def test_the_innermost_module_is_named_by_its_path_in_the_outermost_model() -> None:
    classifier = Tower()
    exc = raised(lambda: classifier(torch.rand(2, 3, 8, 8)))  # 8*6*6 = 288 features, not 100
    d = diagnose_exception(exc)
    assert d.location.module == "head.1" and d.location.module_type == "Linear"
    top = d.causes[0]
    assert (top.module, top.attribute) == ("head.1", "in_features")
    assert top.fix == "classifier.head[1] = nn.Linear(288, 4)"  # the user's own variable name
    assert any("`head[1]` expects 100 input features" in f for f in d.facts)
    assert d.user_location is not None and d.user_location.file == __file__


def test_tensors_of_the_failing_frame_are_reported() -> None:
    conv = nn.Conv2d(3, 8, 3)
    model = nn.Sequential(conv)
    exc = raised(lambda: model(torch.rand(1, 4, 16, 16)))
    d = diagnose_exception(exc)
    assert any(f.startswith("tensors in `Conv2d.") and "`input` [1, 4, 16, 16]" in f for f in d.facts)
    assert d.causes[0].fix == "model[0] = nn.Conv2d(4, 8, kernel_size=3)"


def test_labels_past_the_head_name_the_head_and_the_label() -> None:
    model = nn.Sequential(nn.Linear(6, 5))
    criterion = nn.CrossEntropyLoss()
    targets = torch.tensor([0, 7, 2])
    exc = raised(lambda: criterion(model(torch.rand(3, 6)), targets))
    d = diagnose_exception(exc)
    assert any("run from 0 to 7" in f and "5 classes" in f for f in d.facts)
    fixes = [c.fix for c in d.causes]
    assert "model[0] = nn.Linear(6, 8)" in fixes


def test_a_state_dict_with_module_prefix_is_named() -> None:
    model = nn.Sequential(nn.Linear(2, 2))
    saved = {f"module.{k}": v for k, v in model.state_dict().items()}
    exc = raised(lambda: model.load_state_dict(saved))
    d = diagnose_exception(exc)
    assert (
        d.causes[0].fix == 'model.load_state_dict({k.removeprefix("module."): v for k, v in saved.items()})'
    )


def test_an_error_outside_torch_is_honestly_not_recognised() -> None:
    d = diagnose_exception(raised(lambda: {}["missing"]))
    assert d.code is None and d.error_type == "KeyError"


def test_diagnosis_never_raises_even_when_a_module_misbehaves() -> None:
    class Broken(nn.Module):
        def named_modules(self, *args, **kwargs):
            raise RuntimeError("broken named_modules")

        def forward(self, x):
            return x @ torch.ones(3, 3)

    model = Broken()
    exc = raised(lambda: model(torch.ones(2, 2)))
    d = diagnose_exception(exc)
    assert d.code is not None  # the message-only diagnosis survives
    assert any("headfit could not read the live objects" in f for f in d.facts)


def test_diagnosing_prints_then_reraises_the_same_exception() -> None:
    out = io.StringIO()
    model = nn.Linear(4, 2)
    with pytest.raises(RuntimeError, match="mat1 and mat2") as info, diagnosing(file=out):
        model(torch.rand(3, 5))
    assert info.value.__traceback__ is not None
    text = out.getvalue()
    assert "error[" in text and "model = nn.Linear(5, 2)" in text


def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120
    )


def test_importing_headfit_and_install_do_not_import_torch() -> None:
    proc = _python(
        """
        import sys, headfit
        headfit.install()
        import headfit.live
        print("torch" in sys.modules)
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"


def test_install_prints_the_traceback_then_the_diagnosis() -> None:
    proc = _python(
        """
        import headfit
        headfit.install()
        import torch
        from torch import nn
        net = nn.Sequential(nn.Linear(8, 4), nn.BatchNorm1d(5))
        net(torch.rand(2, 8))
        """
    )
    assert proc.returncode == 1
    head, _, diagnosis = proc.stderr.partition("error[")
    assert "Traceback (most recent call last)" in head and "RuntimeError" in head
    assert "net[1] = nn.BatchNorm1d(4)" in diagnosis


def test_install_without_torch_still_explains_from_the_message() -> None:
    proc = _python(
        """
        import sys, headfit
        headfit.install()
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied (2x2048 and 512x10)")
        """
    )
    assert proc.returncode == 1
    assert "Traceback" in proc.stderr and "error[" in proc.stderr
    assert "2048" in proc.stderr.partition("error[")[2]


def test_install_twice_prints_one_diagnosis() -> None:
    proc = _python(
        """
        import headfit
        headfit.install()
        headfit.install()
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied (2x2048 and 512x10)")
        """
    )
    assert proc.stderr.count("error[") == 1


def test_message_guesses_about_modules_the_model_lacks_are_dropped() -> None:
    model = nn.Sequential(nn.Linear(6, 5))
    exc = raised(lambda: nn.functional.cross_entropy(model(torch.rand(2, 6)), torch.tensor([0, 5])))
    d = diagnose_exception(exc)
    paths = {name for name, _ in model.named_modules()}
    assert all(c.module is None or c.module in paths for c in d.causes)
    assert d.causes[0].fix == "model[0] = nn.Linear(6, 6)"
