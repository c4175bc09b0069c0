"""The compliance pack: obligation register, traceability, compliance matrix, DPIA annex.

The register (``data/obligations.json``) lists each condition of Regulation 2021/1232
(and 2026/1881 where it differs) that software can serve: its reference, what the
library does, the modules that implement it, and what remains the provider's duty. The
tests that prove an obligation are not listed by hand: they carry
``@pytest.mark.obligation("id")`` and are found by reading the test files, so that the
matrix cannot rot (a test in the suite fails when an obligation has no existing module
or no tagged test, or a tag names an unknown obligation).
"""

from __future__ import annotations

import ast
import html
import importlib.util
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .._errors import ConfigError, Errors

__all__ = ["Obligation", "check_traceability", "load_register", "matrix", "tagged_test_index",
           "tagged_tests"]

REGISTER = Path(__file__).parent / "data" / "obligations.json"
# obligation -> test ids, read from the tests at release (an installed wheel has no tests/);
# tests/test_compliance.py fails when it differs from the tests: regenerate it with
# `python scripts/update_test_index.py`
TEST_INDEX = Path(__file__).parent / "data" / "test_index.json"
_KEYS = ("id", "reference", "requirement", "implementation", "modules", "provider_duty")


@dataclass(frozen=True)
class Obligation:
    id: str
    reference: str
    requirement: str
    implementation: str
    modules: tuple[str, ...]
    provider_duty: str


def load_register(path: str | Path = REGISTER) -> tuple[Obligation, ...]:
    """Load and validate the register; errors name the file and the entry."""
    raw = json.loads(Path(path).read_text(encoding="utf-8"))
    entries = raw.get("obligations") if isinstance(raw, dict) else None
    if not isinstance(entries, list) or not entries:
        raise ConfigError(Errors.E011.format(file=path, problem="'obligations' must be a "
                                             "non-empty list"))
    out, seen = [], set()
    for i, e in enumerate(entries):
        where = f"obligations[{i}]"
        if not isinstance(e, dict) or set(e) != set(_KEYS):
            problem = f"{where}: keys must be exactly {', '.join(_KEYS)}"
        elif not all(isinstance(e[k], str) for k in _KEYS if k != "modules"):
            problem = f"{where} ({e.get('id')}): text fields must be strings"
        elif not isinstance(e["modules"], list) or not all(isinstance(m, str)
                                                           for m in e["modules"]):
            problem = f"{where} ({e['id']}): 'modules' must be a list of module names"
        elif e["id"] in seen:
            problem = f"{where}: duplicate id {e['id']!r}"
        else:
            problem = None
        if problem:
            raise ConfigError(Errors.E011.format(file=path, problem=problem))
        seen.add(e["id"])
        out.append(Obligation(e["id"], e["reference"], e["requirement"], e["implementation"],
                              tuple(e["modules"]), e["provider_duty"]))
    return tuple(out)


def tagged_tests(test_dir: str | Path) -> dict[str, list[str]]:
    """Obligation id -> test ids, read from ``pytest.mark.obligation("id")`` decorators and
    module-level ``pytestmark`` in the test files (no test is imported or run)."""
    found: dict[str, list[str]] = {}
    for path in sorted(Path(test_dir).rglob("test_*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        module_tags = []
        for node in tree.body:
            if isinstance(node, ast.Assign) and any(
                    isinstance(t, ast.Name) and t.id == "pytestmark" for t in node.targets):
                module_tags = _marks(node.value)
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
                tags = module_tags + [t for d in node.decorator_list for t in _marks(d)]
                for tag in tags:
                    found.setdefault(tag, []).append(f"{path.name}::{node.name}")
    return found


def checkout_tests() -> Path | None:
    """The ``tests/`` folder when running from a source checkout, else None."""
    root = Path(__file__).resolve().parents[2]
    tests = root / "tests"
    if tests.is_dir() and (root / "pyproject.toml").is_file() and any(tests.glob("test_*.py")):
        return tests
    return None


def tagged_test_index(test_dir: str | Path | None = None) -> dict[str, list[str]]:
    """Obligation id -> test ids: from ``test_dir`` or the checkout's tests when there are
    any, else the index bundled with the package."""
    tests = Path(test_dir) if test_dir is not None else checkout_tests()
    if tests is not None:
        return tagged_tests(tests)
    return json.loads(TEST_INDEX.read_text(encoding="utf-8"))


def _marks(node: ast.AST) -> list[str]:
    """Obligation ids in ``pytest.mark.obligation("a", "b")`` (or a list of such marks)."""
    if isinstance(node, (ast.List, ast.Tuple)):
        return [t for elt in node.elts for t in _marks(elt)]
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and node.func.attr == "obligation"):
        return [a.value for a in node.args if isinstance(a, ast.Constant)
                and isinstance(a.value, str)]
    return []


def check_traceability(register: Sequence[Obligation], tags: Mapping[str, list[str]],
                       ) -> list[str]:
    """Problems: an obligation without an existing module or without a tagged test, or a
    tag naming an unknown obligation. Empty when the register is traceable."""
    problems = []
    ids = {o.id for o in register}
    for o in register:
        for module in o.modules:
            if importlib.util.find_spec(module.split(".")[0]) is None or not _module_exists(
                    module):
                problems.append(f"{o.id}: module {module} does not exist")
        if not o.modules:
            problems.append(f"{o.id}: no implementing module")
        if not tags.get(o.id):
            problems.append(f"{o.id}: no test is tagged with it")
    for tag, tests in tags.items():
        if tag not in ids:
            problems.append(f"unknown obligation {tag!r} tagged on {', '.join(tests)}")
    return problems


def _module_exists(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


def matrix(register: Sequence[Obligation], tags: Mapping[str, list[str]],
           figures: Mapping[str, str] | None = None) -> tuple[str, str]:
    """The compliance matrix as Markdown and HTML."""
    figures = figures or {}
    head = ["obligation", "status", "implementation", "evidence", "provider duties"]
    rows = []
    for o in register:
        tests = tags.get(o.id, [])
        status = "implemented and tested" if tests and o.modules else "incomplete"
        evidence = "; ".join(tests) + (f"; {figures[o.id]}" if o.id in figures else "")
        rows.append([f"{o.reference}: {o.requirement}", status,
                     f"{o.implementation} ({', '.join(o.modules)})", evidence,
                     o.provider_duty or "-"])
    md = ["# Compliance matrix", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    md += ["| " + " | ".join(c.replace("|", "/") for c in r) + " |" for r in rows]
    page = ("<!doctype html><html><head><meta charset='utf-8'><title>Compliance matrix"
            "</title></head><body><h1>Compliance matrix</h1><table border='1'><tr>"
            + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>"
            + "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>"
                      for r in rows) + "</table></body></html>")
    return "\n".join(md) + "\n", page

