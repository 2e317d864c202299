"""The rule registry and the dispatch from a parsed error to a diagnosis."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass

from headfit.diagnosis import Diagnosis, unrecognised
from headfit.explain.parse import ParsedError, parse_error

RuleFn = Callable[[ParsedError], "Diagnosis | None"]


@dataclass(frozen=True)
class Rule:
    fn: RuleFn
    code: str
    priority: int  # lower runs first: specific signatures (a detection head's view) before generic ones


_RULES: list[Rule] = []
STRICT = False  # tests set this: a rule that raises is a bug to see, not to skip
_loaded = False


def rule(code: str, priority: int = 50) -> Callable[[RuleFn], RuleFn]:
    """Register a rule. It receives the parsed error and returns a Diagnosis, or None if it does not apply."""

    def register(fn: RuleFn) -> RuleFn:
        _RULES.append(Rule(fn, code, priority))
        return fn

    return register


def _load_rules() -> list[Rule]:
    global _loaded
    if not _loaded:
        from headfit.explain import rules

        for info in pkgutil.iter_modules(rules.__path__):
            importlib.import_module(f"{rules.__name__}.{info.name}")
        _RULES.sort(key=lambda r: r.priority)
        _loaded = True
    return _RULES


def diagnose_parsed(parsed: ParsedError) -> Diagnosis:
    """The last exception is the relevant one; when no rule knows it, the one it was raised from is tried."""
    for candidate in [parsed, *reversed(parsed.chain)]:
        diagnosis = _first_match(candidate)
        if diagnosis is not None:
            return diagnosis.ranked()
    return unrecognised(parsed.message, "no headfit rule matches this error message", parsed.type)


def _first_match(parsed: ParsedError) -> Diagnosis | None:
    for r in _load_rules():
        try:
            diagnosis = r.fn(parsed)
        except Exception:
            if STRICT:
                raise
            continue  # a broken rule must not hide the others' answer, nor crash the CLI
        if diagnosis is not None:
            return diagnosis
    return None


# A short text with no error words may still be a message copied without its type (forum posts often
# quote only "running_mean should contain 128 elements not 64"): let the rules have a look at it.
_BARE_MESSAGE_LIMIT = 2000


def diagnose_text(text: str) -> Diagnosis:
    parsed = parse_error(text)
    if isinstance(parsed, str):  # a reason why this is not an error at all
        if text.strip() and len(text) <= _BARE_MESSAGE_LIMIT and "prose" in parsed:
            diagnosis = diagnose_parsed(ParsedError(None, text.strip(), raw=text))
            if diagnosis.recognised:
                return diagnosis
        return unrecognised(text[:200], parsed)
    return diagnose_parsed(parsed)
