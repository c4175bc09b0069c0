"""Every docstring example of the installed package runs (numpydoc examples are tests)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import classifier

SKIP = {"classifier.integrations.spark"}  # its examples need a Spark session (test_spark)


def _modules() -> list[str]:
    names = ["classifier"]
    for info in pkgutil.walk_packages(classifier.__path__, "classifier."):
        names.append(info.name)
    # mapped from the repository's top-level folders (classifier.models, .evaluation)
    for package in ("classifier.evaluation", "classifier.models"):
        names.append(package)
        mod = importlib.import_module(package)
        names += [i.name for i in pkgutil.walk_packages(mod.__path__, f"{package}.")]
    return sorted(n for n in set(names) if n not in SKIP)


@pytest.mark.parametrize("name", _modules())
def test_docstring_examples(name, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # an example that writes leaves nothing in the checkout
    try:
        module = importlib.import_module(name)
    except ImportError as exc:  # an optional extra that is not installed
        pytest.skip(str(exc))
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE,
                             verbose=False)
    assert result.failed == 0
