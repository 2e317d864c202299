"""The code explanations, tested as rustc tests its error index: every code headfit can emit has a
``codes/HFnnn.md`` whose front matter agrees with what the source emits, ``headfit explain --code``
prints every file, each ```` ```python error ```` example really raises an error that
``headfit.explain`` diagnoses with that file's code (from the live exception and from the pasted
traceback, with the rule engine in STRICT mode), and each ```` ```python data ```` example writes a
dataset (naming it ``DATA``) that ``headfit data check`` reports with that file's code and that
``--fix OUT`` turns into one that checks clean."""

from __future__ import annotations

import ast
import json
import re
import traceback
from functools import cache
from pathlib import Path

import pytest
from click.testing import CliRunner

import headfit
import headfit.catalogue as catalogue
from headfit.catalogue import all_codes, code_info
from headfit.cli import cli
from headfit.explain import engine, explain

SOURCE = Path(headfit.__file__).parent
CODE = re.compile(r"^HF\d{3}$")
SLUG = re.compile(r"^[a-z][a-z0-9_]*$")
ERROR_EXAMPLE = re.compile(r"^```python error\n(?P<code>.*?)^```$", re.MULTILINE | re.DOTALL)
DATA_EXAMPLE = re.compile(r"^```python data\n(?P<code>.*?)^```$", re.MULTILINE | re.DOTALL)


@cache
def _source_trees() -> dict[Path, ast.Module]:
    return {path: ast.parse(path.read_text(encoding="utf-8")) for path in sorted(SOURCE.rglob("*.py"))}


def emitted_codes() -> set[str]:
    """Every ``"HFnnn"`` string in headfit's source: what rules, families, check and live can emit."""
    return {
        node.value
        for tree in _source_trees().values()
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and CODE.match(node.value)
    }


def categories_written_in_source() -> list[tuple[str, str, str]]:
    """``(code, category, file)`` for each call that spells both out, e.g. ``Diagnosis(code="HF240",
    category="trace_failed", ...)``: the catalogue must say the same."""
    found = []
    for path, tree in _source_trees().items():
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            words = {k.arg: k.value.value for k in node.keywords if isinstance(k.value, ast.Constant)}
            if isinstance(words.get("code"), str) and isinstance(words.get("category"), str):
                found.append((words["code"], words["category"], path.name))
    return found


def error_example(code: str) -> str | None:
    match = ERROR_EXAMPLE.search(code_info(code).text)
    return match["code"] if match else None


def data_example(code: str) -> str | None:
    match = DATA_EXAMPLE.search(code_info(code).text)
    return match["code"] if match else None


def _words(text: str) -> str:
    """The words of Markdown or of its rendering, for comparing them (rich wraps and drops markup)."""
    return " ".join(re.findall(r"[A-Za-z0-9_]+", text))


# --- (a) every code emitted has its file, with front matter that agrees -------------------------------


def test_the_source_emits_codes():
    assert {"HF101", "HF123", "HF201", "HF240"} <= emitted_codes()


@pytest.mark.parametrize("code", sorted(emitted_codes()))
def test_every_emitted_code_has_a_file_with_front_matter(code):
    path = Path(catalogue.CODES_DIR) / f"{code}.md"
    assert path.exists(), f"add {path.name}: code, category, title front matter and a long explanation"
    info = code_info(code)
    assert info.code == code, f"{path.name} says it documents {info.code}"
    assert SLUG.match(info.category), f"{code}: category {info.category!r} is not a slug"
    assert info.title and not info.title.endswith("."), f"{code}: title {info.title!r}"
    assert len(info.text.split()) >= 30, f"{code}: the long explanation is missing"


def test_every_rule_code_has_a_file_and_rules_emit_its_category():
    for r in engine.all_rules():
        info = code_info(r.code)
        assert info is not None, f"{r.fn.__name__} emits {r.code}, which has no codes/{r.code}.md"
        assert catalogue.category_of(r.code) == info.category


def test_categories_spelled_out_in_the_source_match_the_catalogue():
    written = categories_written_in_source()
    assert ("HF240", "trace_failed", "check.py") in written
    for code, category, where in written:
        assert code_info(code).category == category, f"{where} emits {code} as {category!r}"


def test_no_file_documents_a_code_nothing_emits():
    assert set(all_codes()) <= emitted_codes()


def test_one_category_per_code_and_one_file_per_code():
    files = sorted(p.stem for p in Path(catalogue.CODES_DIR).glob("HF*.md"))
    assert files == sorted(all_codes())


# --- (b) `headfit explain --code` prints every file ---------------------------------------------------


@pytest.mark.parametrize("code", sorted(all_codes()))
def test_explain_code_prints_the_file(code):
    info = code_info(code)
    result = CliRunner().invoke(cli, ["explain", "--code", code.lower()])
    assert result.exit_code == 0, result.output
    assert _words(f"{code} {info.category} {info.title}") in _words(result.output)
    body = "\n".join(line for line in info.text.splitlines() if not line.startswith("```"))
    # every word, in order: Markdown that eats text (`2*3*4` read as emphasis) fails here
    assert _words(body) in _words(result.output)
    as_json = json.loads(CliRunner().invoke(cli, ["explain", "--code", code, "--json"]).output)
    assert as_json == {"code": code, "category": info.category, "title": info.title, "text": info.text}


def test_a_title_is_printed_as_text_not_as_markup(monkeypatch):
    info = catalogue.CodeInfo("HF101", "view_size_mismatch", "`logits[0]` is [bold]not[/] markup", "body\n")
    monkeypatch.setattr(catalogue, "code_info", lambda code: info)
    result = CliRunner().invoke(cli, ["explain", "--code", "HF101"])
    assert "`logits[0]` is [bold]not[/] markup" in result.output


# --- (c) each `python error` example raises what its file explains ------------------------------------

EXAMPLES = sorted(code for code in all_codes() if error_example(code) is not None)


def test_every_code_a_rule_declares_has_a_runnable_example():
    declared = {r.code for r in engine.all_rules()}
    assert declared <= set(EXAMPLES), f"add a ```python error block to: {sorted(declared - set(EXAMPLES))}"


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("code", EXAMPLES)
def test_example_raises_the_error_its_code_explains(code, monkeypatch):
    monkeypatch.setattr(engine, "STRICT", True)  # a rule that crashes or matches without its needles fails
    path = Path(catalogue.CODES_DIR) / f"{code}.md"
    error = _raised_by(compile(error_example(code), str(path), "exec"))
    assert error is not None, f"the example in {path.name} raised nothing"
    live, pasted = explain(error), explain("".join(traceback.format_exception(error)))
    assert (live.code, pasted.code) == (code, code), f"{type(error).__name__}: {str(error)[:300]}"
    assert live.category == code_info(code).category
    assert live.causes and all(c.fix for c in live.causes[:1]), "the top cause says how to fix it"


def _raised_by(example) -> BaseException | None:
    try:
        exec(example, {"__name__": "example"})
    except Exception as exc:  # noqa: BLE001 - the example's error is the point
        return exc
    return None


# --- (d) each `python data` example writes a dataset `data check` reports with its code ---------------

DATA_EXAMPLES = sorted(code for code in all_codes() if data_example(code) is not None)


def test_every_data_code_has_a_runnable_example():
    data_codes = {code for code in emitted_codes() if code.startswith("HF3")}
    assert data_codes, "the data lint emits HF3nn codes"
    assert data_codes <= set(DATA_EXAMPLES), (
        f"add a ```python data block to: {sorted(data_codes - set(DATA_EXAMPLES))}"
    )


@pytest.mark.parametrize("code", DATA_EXAMPLES)
def test_data_example_is_reported_with_its_code_and_fixed(code, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = Path(catalogue.CODES_DIR) / f"{code}.md"
    namespace: dict = {"__name__": "example"}
    exec(compile(data_example(code), str(path), "exec"), namespace)
    data = namespace["DATA"]
    checked = CliRunner().invoke(cli, ["data", "check", data, "--json"])
    assert checked.exit_code == 1, checked.output
    document = json.loads(checked.stdout)
    assert {p["code"] for p in document["problems"]} == {code}, "the example shows its code alone"
    fixed = CliRunner().invoke(cli, ["data", "check", data, "--fix", "fixed/out.json", "--json"])
    assert json.loads(fixed.stdout)["fix"]["clean"], fixed.stdout
    again = CliRunner().invoke(cli, ["data", "check", "fixed/out.json", "--json"])
    assert again.exit_code == 0 and json.loads(again.stdout)["problems"] == []


@pytest.mark.parametrize("code", DATA_EXAMPLES)
def test_data_code_file_has_an_example_and_a_fix_section(code):
    text = code_info(code).text
    sections = re.findall(r"^## (.+)$", text, re.MULTILINE)
    assert sections[:2] == ["Example", "How to fix it"], f"{code}: sections {sections}"
    assert len(DATA_EXAMPLE.findall(text)) == 1, f"{code}: one ```python data block"
    explanation, fix_section = text.split("## Example")[0], text.split("## How to fix it")[1]
    assert len(explanation.split()) >= 30 and len(fix_section.split()) >= 12, code
    assert "--fix OUT" in fix_section or "--fix" in fix_section, f"{code}: say what `--fix OUT` does"
