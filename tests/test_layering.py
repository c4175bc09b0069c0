"""Data flows one way (scope -> text boundary -> state -> risk factors -> model -> pipeline
-> triage and review -> console -> evaluation -> CLI): no module imports a later stage, no
module imports another module's private names, and code outside the package (the
evaluation harness, benchmarks, examples) uses only the public API."""

from __future__ import annotations

import ast
import json
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


def _foreign_private_modules(here: str, package: str,
                             imports: list[tuple[int, str, tuple[str, ...]]]) -> list[str]:
    """Imports of a private module of another package: a subpackage's private modules are
    its own (its ``__init__`` re-exports what others use); the private modules of an
    enclosing package (``classifier._errors``) are shared by its subpackages."""
    out = []
    for line, target, names in imports:
        parts = target.split(".")
        if parts[0] != "classifier":
            continue
        modules = [target] + [f"{target}.{n}" for n in names]  # from . import _x
        for module in modules:
            bits = module.split(".")
            private = next((k for k, b in enumerate(bits) if b.startswith("_")
                            and not b.startswith("__")), None)
            if private is None or (module != target and private < len(bits) - 1):
                continue
            owner = ".".join(bits[:private])
            if not (package == owner or package.startswith(owner + ".")):
                out.append(f"{here}:{line} imports {module}")
    return out


def test_no_module_imports_another_packages_private_modules():
    found = []
    for p in _package_files():
        here = _module_name(p)
        package = here if p.name == "__init__.py" else here.rsplit(".", 1)[0]
        found += _foreign_private_modules(here, package, _imports(p))
    assert found == []
    # the check itself: the console reaching into the guard's modules is caught
    assert _foreign_private_modules("classifier.console._web", "classifier.console",
                                    [(1, "classifier.guard._cases", ("shown",))])
    assert not _foreign_private_modules("classifier.guard._cases", "classifier.guard",
                                        [(1, "classifier._scope", ("ScanPolicy",))])


def _sources(folder: str) -> list[tuple[str, str]]:
    """(name, Python source) of every script and notebook code cell under ``folder``."""
    out = [(str(p.relative_to(ROOT)), p.read_text(encoding="utf-8"))
           for p in sorted((ROOT / folder).rglob("*.py"))]
    for nb in sorted((ROOT / folder).rglob("*.ipynb")):
        cells = json.loads(nb.read_text(encoding="utf-8"))["cells"]
        code = ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]
        out.append((str(nb.relative_to(ROOT)),
                    "\n".join(line for cell in code for line in cell.splitlines()
                              if not line.lstrip().startswith(("%", "!")))))
    return out


def private_uses(name: str, source: str, package: str | None = None) -> list[str]:
    """Every import of a private module or name of ``classifier`` in ``source``: absolute
    ones, and relative ones resolved from ``package`` (the harness inside the package)."""
    used = []
    for node in ast.walk(ast.parse(source)):
        targets: list[str] = []
        if isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level and package:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            elif node.level:
                continue
            targets = [module] + [f"{module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr == "import_module" and node.args
              and isinstance(node.args[0], ast.Constant)):
            targets = [str(node.args[0].value)]
        for t in targets:
            parts = t.split(".")
            if package and t.startswith(package + "."):  # its own package's modules
                parts = parts[-1:] if isinstance(node, ast.ImportFrom) and t != module else []
            if t.startswith("classifier") and any(
                    p.startswith("_") and not p.startswith("__") for p in parts):
                used.append(f"{name}:{node.lineno} {t}")
    return used


@pytest.mark.parametrize("folder", ["evaluation", "benchmarks", "examples", "notebooks"])
def test_code_outside_the_package_uses_only_the_public_api(folder):
    """The harness is installed inside the package but written as a user of it; the
    notebooks' code cells count too."""
    sources = _sources(folder)
    assert sources
    package = "classifier.evaluation" if folder == "evaluation" else None
    used = []
    for name, source in sources:
        pkg = package
        if package and name.count("/") > 1:  # a subpackage of the harness
            pkg = ".".join([package, *Path(name).parts[1:-1]])
        used += private_uses(name, source, pkg)
    assert used == []


def test_the_public_api_check_catches_what_users_must_not_do():
    probes = ["from classifier._pipeline import ScoreResult", "from classifier import _pipeline",
              "import classifier._model as m", "from classifier.guard import _identity",
              "importlib.import_module('classifier._state')", "from .._text import x",
              "from .. import _features"]
    for probe in probes:
        assert private_uses("probe", probe, "classifier.evaluation"), probe
    assert not private_uses("ok", "from classifier import Pipeline\nfrom .authors import a\n"
                            "from ._families import lines_for", "classifier.evaluation")
    assert private_uses("probe", "from ._families import _split", "classifier.evaluation")


def test_the_layering_check_catches_an_upward_import():
    """The checks above can fail: the state importing the model, or the pipeline the
    guard, is reported; the guard importing the pipeline is not."""
    state = _imports(PACKAGE / "_state.py")
    assert _upward("classifier._state", state) == []
    assert _upward("classifier._state", [*state, (1, "classifier._model", ("RiskModel",))])
    assert _upward("classifier._pipeline", [(1, "classifier.guard._cases", ("Guard",))])
    assert not _upward("classifier.guard._cases", [(1, "classifier._pipeline", ("Pipeline",))])
