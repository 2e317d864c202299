"""The rule index that keeps `headfit explain` fast: it is up to date, every rule names its needles, a
message imports only the rule modules it can concern, and a rule that matches without its needles is
caught in STRICT mode."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from headfit.diagnosis import Diagnosis
from headfit.explain import diagnose_text, engine
from headfit.explain.parse import parse_error
from headfit.explain.rule_index import NEEDLES

SEED = "shape '[2, -1, 91, 168, 96]' is invalid for input of size 64512"


def test_index_matches_the_rules():
    assert NEEDLES == engine.needles_by_module(), "run `python scripts/write_rule_index.py`"


def test_the_generator_rewrites_an_up_to_date_index_unchanged(tmp_path):
    import importlib.util
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "scripts" / "write_rule_index.py"
    spec = importlib.util.spec_from_file_location("write_rule_index", script)
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)
    copy = tmp_path / "rule_index.py"
    copy.write_text(generator.INDEX.read_text(encoding="utf-8"), encoding="utf-8")
    generator.write(copy)
    assert copy.read_text(encoding="utf-8") == generator.INDEX.read_text(encoding="utf-8")


def test_every_rule_names_its_needles():
    missing = [f"{r.fn.__module__}.{r.fn.__name__}" for r in engine.all_rules() if not r.needs]
    assert not missing, f"give these rules needs=... (literal text from their regexes): {missing}"


def test_rules_are_tried_in_priority_order_then_module_then_definition():
    # the seed message matches both the detection-head rule and the generic view rule: the answer is
    # the first in priority order, so a registry that tried the generic rule first would give its summary
    by_name = {r.fn.__name__: r for r in engine.all_rules()}
    specific, generic = by_name["detection_head_view"], by_name["general_view"]
    parsed = parse_error(SEED)
    first, second = specific.fn(parsed), generic.fn(parsed)
    assert first is not None and second is not None and first.summary != second.summary
    assert specific.priority < generic.priority
    assert diagnose_text(SEED).summary == first.summary
    reshape = [r.fn.__name__ for r in engine.all_rules() if r.module == "reshape" and r.code == "HF101"]
    assert reshape == ["detection_head_view", "yolo_detect_view", "empty_view", "general_view"]


def test_rules_for_keeps_only_rules_whose_needles_are_in_the_message():
    names = [r.fn.__name__ for r in engine.rules_for(SEED)]
    assert names == ["detection_head_view", "yolo_detect_view", "window_partition_view", "general_view"]
    assert engine.rules_for("RuntimeError: nothing any rule knows") == []


HEAVY = ("rich", "rich._emoji_codes", "pathlib", "traceback", "json")  # each costs start-up time


def _modules_after(code: str) -> dict:
    """Run ``code`` in a fresh interpreter; which rule modules and heavy modules did it import?"""
    report = (
        "import sys\n"
        f"heavy = [m for m in {HEAVY!r} if m in sys.modules]\n"
        "rules = [m.rsplit('.', 1)[1] for m in sorted(sys.modules) if m.startswith('headfit.explain.rules.')]\n"
        "import json as _json\n"
        "print(_json.dumps({'rules': rules, 'heavy': heavy, 'result': result}))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code + report], capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.splitlines()[-1])


def test_a_message_imports_only_the_rule_modules_it_can_concern_and_nothing_heavy():
    found = _modules_after(
        f"from headfit.explain import diagnose_text\nresult = diagnose_text({SEED!r}).code\n"
    )
    assert found == {"rules": ["reshape"], "heavy": [], "result": "HF101"}


@pytest.mark.parametrize(("args", "heavy"), [(["--json"], ["json"]), ([], ["rich"])])
def test_the_cli_imports_rich_only_to_print_text_and_json_only_for_json(args, heavy):
    code = (
        "from headfit.cli import main\n"
        "try:\n"
        f"    main(['explain', *{args!r}, {SEED!r}])\n"
        "except SystemExit as exit:\n"
        "    result = exit.code\n"
    )
    assert _modules_after(code) == {"rules": ["reshape"], "heavy": heavy, "result": 0}


def test_a_rule_module_missing_from_the_index_is_still_used():
    code = (
        "from headfit.explain import rule_index as index\n"
        "index.NEEDLES = {k: v for k, v in index.NEEDLES.items() if k != 'vit'}\n"
        "from headfit.explain import diagnose_text\n"
        "result = diagnose_text('AssertionError: Wrong image height! Expected 224 but got 384!').code\n"
    )
    found = _modules_after(code)
    assert found["result"] == "HF121" and "vit" in found["rules"]


def test_strict_mode_catches_a_rule_that_matches_without_its_needles(monkeypatch):
    monkeypatch.setattr(engine, "_RULES", engine.all_rules())  # a copy: the rule below leaves with it
    monkeypatch.setattr(engine, "STRICT", True)

    @engine.rule("HF101", priority=0, needs="text this message does not have")
    def overeager(parsed):
        return Diagnosis("HF101", "view_size_mismatch", parsed.type, parsed.message, "matches anything")

    with pytest.raises(AssertionError, match="overeager"):
        diagnose_text("RuntimeError: anything at all")
    monkeypatch.setattr(engine, "STRICT", False)
    assert diagnose_text("RuntimeError: anything at all").code is None
