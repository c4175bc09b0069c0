"""Data flows one way (scope -> text boundary -> state -> risk factors -> model -> pipeline
-> triage and review -> console -> evaluation -> CLI): no module imports a later stage, no
module imports another module's private names, and code outside the package (the
evaluation harness, benchmarks, examples) uses only the public API."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "classifier"
EVALUATION = ROOT / "evaluation"  # installed as classifier.evaluation

# the stages, earliest first; a module may import its own stage and earlier ones
STAGES: tuple[tuple[str, ...], ...] = (
    ("classifier._errors", "classifier._cache"),
    ("classifier._conversation", "classifier._message_rows", "classifier._scope",
     "classifier.indicators", "classifier.compliance"),
    ("classifier._text",),
    ("classifier._state", "classifier._codec"),
    ("classifier._features",),
    ("classifier._model", "classifier.training"),
    ("classifier._pipeline",),
    ("classifier._scoring", "classifier._stream", "classifier.integrations"),
    ("classifier",),  # the public API: what the later stages use, as users do
    ("classifier.guard",),
    ("classifier.console",),
    ("classifier.evaluation", "classifier._docs"),
    ("classifier._cli_base", "classifier._cli_guard", "classifier._cli"),
)


def _module_name(path: Path) -> str:
    if path.is_relative_to(EVALUATION):
        parts = ("classifier", "evaluation", *path.relative_to(EVALUATION).with_suffix("").parts)
    else:
        parts = ("classifier", *path.relative_to(PACKAGE).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _package_files() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py")) + sorted(EVALUATION.rglob("*.py"))


def _imports(path: Path) -> list[tuple[int, str, tuple[str, ...]]]:
    """(line, absolute module, imported names) of every import in ``path``."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            names = tuple(a.name for a in node.names)
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if node.module is None:  # from . import _x: the modules themselves
                out.extend((node.lineno, f"{target}.{n}", ()) for n in names)
            else:
                out.append((node.lineno, target, names))
        elif isinstance(node, ast.Import):
            out.extend((node.lineno, a.name, ()) for a in node.names)
    return out


def _stage(module: str) -> int | None:
    best = None
    for k, members in enumerate(STAGES):
        for m in members:
            within = module.startswith(m + ".") and m != "classifier"
            if (module == m or within) and (
                    best is None or len(m) > len(best[1])):
                best = (k, m)
    return None if best is None else best[0]


def test_every_module_has_a_stage():
    missing = [_module_name(p) for p in _package_files() if _stage(_module_name(p)) is None]
    assert missing == []


def _upward(here: str, imports: list[tuple[int, str, tuple[str, ...]]]) -> list[str]:
    return [f"{here}:{line} imports {target}" for line, target, _ in imports
            if target.startswith("classifier") and _stage(target) > _stage(here)]


def test_no_module_imports_a_later_stage():
    upward = [u for p in _package_files() for u in _upward(_module_name(p), _imports(p))]
    assert upward == []


def test_no_module_imports_another_modules_private_names():
    private = [f"{_module_name(p)}:{line} {target}.{name}"
               for p in _package_files() for line, target, names in _imports(p)
               for name in names if name.startswith("_") and not name.startswith("__")]
    assert private == []


@pytest.mark.parametrize("folder", ["evaluation", "benchmarks", "examples", "notebooks"])
def test_code_outside_the_package_uses_only_the_public_api(folder):
    """The harness is installed inside the package but written as a user of it."""
    files = sorted((ROOT / folder).rglob("*.py"))
    assert files or folder == "notebooks"
    used = []
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level
                     else [a.name for a in node.names] if isinstance(node, ast.Import) else [])
            used += [f"{path.relative_to(ROOT)}:{node.lineno} {n}" for n in names
                     if n.startswith("classifier") and any(
                         part.startswith("_") for part in n.split("."))]
    assert used == []


def test_the_layering_check_catches_an_upward_import():
    """The checks above can fail: the state importing the model, or the pipeline the
    guard, is reported; the guard importing the pipeline is not."""
    state = _imports(PACKAGE / "_state.py")
    assert _upward("classifier._state", state) == []
    assert _upward("classifier._state", [*state, (1, "classifier._model", ("RiskModel",))])
    assert _upward("classifier._pipeline", [(1, "classifier.guard._cases", ("Guard",))])
    assert not _upward("classifier.guard._cases", [(1, "classifier._pipeline", ("Pipeline",))])
