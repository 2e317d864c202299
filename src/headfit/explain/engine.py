"""The rule registry and the dispatch from a parsed error to a diagnosis.

``explain`` must answer in a fraction of a second from a cold start, so rule modules are imported only
when a message could concern them: each ``@rule`` names the literal text its message ``needs`` (any one
of a few substrings, taken from its regexes), and ``rule_index.py`` lists, per module, the union of its
rules' needles (pure data, written by ``scripts/write_rule_index.py``). A message imports only the modules whose needles it contains, and runs only the rules
whose needles it contains, in priority order. A module missing from the index is always imported, so a
new rule module works with no other edit (a test asks for the index to be regenerated).
"""

from __future__ import annotations

import dataclasses
import importlib
import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache

from headfit.diagnosis import Diagnosis, unrecognised
from headfit.explain.parse import ParsedError, parse_error
from headfit.explain.wording import modern_wording

RuleFn = Callable[[ParsedError], "Diagnosis | None"]
RULES_PACKAGE = "headfit.explain.rules"


@dataclass(frozen=True)
class Rule:
    fn: RuleFn
    code: str
    priority: int  # lower runs first: specific signatures (a detection head's view) before generic ones
    needs: tuple[str, ...] = ()  # the message must contain one of these to match; () = every message
    order: int = 0  # registration order, the tie-break within a module

    @property
    def module(self) -> str:
        return self.fn.__module__.rpartition(".")[2]

    @property
    def sort_key(self) -> tuple[int, str, int]:
        # the order of importing every module alphabetically, then a stable sort by priority
        return (self.priority, self.module, self.order)

    def may_match(self, message: str) -> bool:
        return not self.needs or any(needle in message for needle in self.needs)


_RULES: list[Rule] = []
STRICT = False  # tests set this: a rule that raises, or matches without its needles, is a bug to see
_counter = itertools.count()
_imported: set[str] = set()


def rule(code: str, priority: int = 50, needs: str | Iterable[str] = ()) -> Callable[[RuleFn], RuleFn]:
    """Register a rule. It receives the parsed error and returns a Diagnosis, or None if it does not apply.

    ``needs``: literal text the message must contain (one of several) for the rule to have any chance;
    messages without it never import the rule's module nor call it.
    """
    needles = (needs,) if isinstance(needs, str) else tuple(needs)

    def register(fn: RuleFn) -> RuleFn:
        _RULES.append(Rule(fn, code, priority, needles, next(_counter)))
        _RULES.sort(key=lambda r: r.sort_key)
        return fn

    return register


@cache
def rule_modules() -> tuple[str, ...]:
    """The rule modules in ``explain/rules/``, alphabetically; ``_helpers`` are not rule modules."""
    import pkgutil

    from headfit.explain import rules

    return tuple(m.name for m in pkgutil.iter_modules(rules.__path__) if not m.name.startswith("_"))


def all_rules() -> list[Rule]:
    """Every rule, in the order they are tried (imports every rule module)."""
    for module in rule_modules():
        _import(module)
    return list(_RULES)


def rules_for(message: str) -> list[Rule]:
    """The rules that may match ``message``, in the order they are tried; imports only their modules."""
    from headfit.explain.rule_index import NEEDLES

    for module in _unindexed_modules():
        _import(module)
    for module, needles in NEEDLES.items():
        if not needles or any(needle in message for needle in needles):
            _import(module)
    return [r for r in _RULES if r.may_match(message)]


def needles_by_module() -> dict[str, tuple[str, ...]]:
    """What ``rule_index.NEEDLES`` must say: per rule module, every needle of its rules (() = always)."""
    index: dict[str, tuple[str, ...]] = {}
    for module in rule_modules():
        _import(module)
        rules = [r for r in _RULES if r.module == module]
        needles = dict.fromkeys(n for r in sorted(rules, key=lambda r: r.order) for n in r.needs)
        always = not rules or any(not r.needs for r in rules)
        index[module] = () if always else tuple(needles)
    return index


@cache
def _unindexed_modules() -> tuple[str, ...]:
    """Rule modules added since the index was written: imported for every message until it is rewritten."""
    from headfit.explain.rule_index import NEEDLES

    return tuple(m for m in rule_modules() if m not in NEEDLES)


def _import(module: str) -> None:
    if module not in _imported:
        importlib.import_module(f"{RULES_PACKAGE}.{module}")
        _imported.add(module)


def diagnose_parsed(parsed: ParsedError) -> Diagnosis:
    """The last exception is the relevant one; when no rule knows it, the one it was raised from is tried.

    Rules read the modern wording of the message (``wording.py``); the diagnosis keeps the message as
    it was pasted."""
    for candidate in [parsed, *reversed(parsed.chain)]:
        modern = modern_wording(candidate.message)
        same = modern.text == candidate.message
        reworded = candidate if same else dataclasses.replace(candidate, message=modern.text)
        diagnosis = _first_match(reworded)
        if diagnosis is not None:
            diagnosis.message = candidate.message
            diagnosis.facts.extend(f for f in modern.facts if f not in diagnosis.facts)
            return diagnosis.ranked()
    return unrecognised(parsed.message, "no headfit rule matches this error message", parsed.type)


def _first_match(parsed: ParsedError) -> Diagnosis | None:
    if STRICT:
        return _first_match_checking_needles(parsed)
    for r in rules_for(parsed.message):
        diagnosis = _try(r, parsed)
        if diagnosis is not None:
            return diagnosis
    return None


def _try(r: Rule, parsed: ParsedError) -> Diagnosis | None:
    try:
        return r.fn(parsed)
    except Exception:
        if STRICT:
            raise
        return None  # a broken rule must not hide the others' answer, nor crash the CLI


def _first_match_checking_needles(parsed: ParsedError) -> Diagnosis | None:
    """Run every rule, as if there were no needles, and fail loudly when one matches without its needles."""
    for r in all_rules():
        diagnosis = _try(r, parsed)
        if diagnosis is None:
            continue
        if not r.may_match(parsed.message):
            raise AssertionError(
                f"rule `{r.fn.__module__}.{r.fn.__qualname__}` diagnosed a message that has none of its "
                f"needles {r.needs!r}: {parsed.message[:300]!r}"
            )
        return diagnosis
    return None


def diagnose_text(text: str) -> Diagnosis:
    parsed = parse_error(text)
    if isinstance(parsed, str):  # a reason why this is not an error at all
        return unrecognised(text[:200], parsed)
    return diagnose_parsed(parsed)
