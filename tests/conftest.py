from __future__ import annotations

import pytest

from classifier.indicators import IndicatorExtractor, hyperscan_available, load_catalogue


@pytest.fixture(scope="session")
def catalogue():
    return load_catalogue("en")


@pytest.fixture(scope="session")
def extractor(catalogue):
    return IndicatorExtractor(catalogue=catalogue)


@pytest.fixture(scope="session")
def full_extractor(catalogue):
    """The full matcher: spaCy on every message, no prefilter."""
    return IndicatorExtractor(catalogue=catalogue, prefilter="none")


ENGINES = ["re", "none"] + (["hyperscan"] if hyperscan_available() else [])


@pytest.fixture(scope="session", params=ENGINES)
def any_extractor(request, catalogue):
    return IndicatorExtractor(catalogue=catalogue, prefilter=request.param)


# the guard tests' shared fixtures (real stores on SQLite and PostgreSQL, signed-in people)
# the console tests' fixtures (a running console on a real store, signed-up people)
from test_console_common import console_guard, console_url, staff, web  # noqa: E402, F401
from test_guard_common import backend, guard, people, quick_argon2, scorer, store  # noqa: E402, F401
