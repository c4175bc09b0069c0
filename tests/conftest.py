from __future__ import annotations

import atexit
import shutil
import tempfile

import pytest
from hypothesis import settings
from hypothesis.configuration import set_hypothesis_home_dir

from classifier.indicators import IndicatorExtractor, hyperscan_available, load_catalogue

# tests never write into the checkout: no example database and no constants cache in
# ./.hypothesis/ (a temporary home, removed at exit)
_HYPOTHESIS_HOME = tempfile.mkdtemp(prefix="solicitation-hypothesis-")
atexit.register(shutil.rmtree, _HYPOTHESIS_HOME, True)
set_hypothesis_home_dir(_HYPOTHESIS_HOME)
settings.register_profile("no-database", database=None)
settings.load_profile("no-database")


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
