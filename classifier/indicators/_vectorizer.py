"""The extractor as a scikit-learn transformer, without importing scikit-learn.

It follows the estimator contract (keyword-only parameters stored as given, validation
in ``fit``, learned state ending in ``_``, ``get_params``/``set_params`` for ``clone``,
``get_feature_names_out``). Pickling keeps only parameters and the catalogue digest: the
extractor (and its vocabulary, which may have seen message words) is rebuilt on load.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from .._errors import ConfigError, Errors, InputTypeError, NotFittedError
from ._extractor import IndicatorExtractor

__all__ = ["IndicatorVectorizer"]


class IndicatorVectorizer:
    """Messages in, indicator counts out (one row per message).

    Parameters
    ----------
    language : str, default "en"
    catalogue_path : str or None
        A catalogue file of your own.
    prefilter : {"auto", "hyperscan", "re", "none"}

    Examples
    --------
    >>> vec = IndicatorVectorizer().fit(["hi"])
    >>> X = vec.transform(["r u alone", "good morning"])
    >>> alone = list(vec.get_feature_names_out()).index("supervision_check.alone")
    >>> X.shape[0], int(X[0, alone]), int(X[1].sum())
    (2, 1, 0)
    >>> vec.get_feature_names_out()[0]
    'age_question.how_old'
    """

    def __init__(self, *, language: str = "en", catalogue_path: str | None = None,
                 prefilter: str = "auto") -> None:
        self.language = language
        self.catalogue_path = catalogue_path
        self.prefilter = prefilter

    _PARAMS = ("language", "catalogue_path", "prefilter")

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self._PARAMS}

    def set_params(self, **params: Any) -> IndicatorVectorizer:
        for key, value in params.items():
            if key not in self._PARAMS:
                raise ConfigError(Errors.E007.format(key=key, estimator="IndicatorVectorizer",
                                                     valid=", ".join(self._PARAMS)))
            setattr(self, key, value)
        return self

    def __sklearn_tags__(self) -> Any:
        """scikit-learn's tags (called by scikit-learn only): a transformer of raw text."""
        from sklearn.utils import InputTags, Tags, TargetTags, TransformerTags

        return Tags(estimator_type=None, target_tags=TargetTags(required=False),
                    transformer_tags=TransformerTags(preserves_dtype=[]),
                    input_tags=InputTags(one_d_array=True, two_d_array=False, string=True),
                    requires_fit=True)

    def _check_fitted(self) -> None:
        if not hasattr(self, "extractor_"):
            raise NotFittedError(Errors.E008.format(estimator="IndicatorVectorizer"))

    def fit(self, X: Iterable[str] | None = None, y: Any = None) -> IndicatorVectorizer:
        """Load and validate the catalogue; X, when given, must be messages (str).

        Nothing is learned from X: the indicators are the catalogue's.
        """
        if X is not None:
            _check_messages(X)
        self.extractor_ = IndicatorExtractor(language=self.language,
                                             catalogue=self.catalogue_path,
                                             prefilter=self.prefilter)
        cat = self.extractor_.catalogue
        self.catalogue_version_ = cat.version
        self.catalogue_sha256_ = cat.sha256
        self.n_features_out_ = len(cat.indicators)
        return self

    def transform(self, X: Iterable[str]) -> np.ndarray:
        """Indicator counts, one row per message (float32)."""
        self._check_fitted()
        return self.extractor_.extract_batch(list(X)).counts.astype(np.float32)

    def fit_transform(self, X: Iterable[str], y: Any = None) -> np.ndarray:
        messages = list(X) if _is_iterable(X) else X
        return self.fit(messages).transform(messages)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        self._check_fitted()
        return np.asarray(self.extractor_.feature_names(), dtype=object)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("extractor_", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        if "catalogue_sha256_" in state:
            self.fit()
            if self.catalogue_sha256_ != state["catalogue_sha256_"]:
                raise ConfigError(Errors.E009.format(estimator="IndicatorVectorizer"))

    def __repr__(self) -> str:
        return (f"IndicatorVectorizer(language={self.language!r}, "
                f"catalogue_path={self.catalogue_path!r}, prefilter={self.prefilter!r})")


def _is_iterable(X: Any) -> bool:
    return not isinstance(X, str) and not hasattr(X, "tocsr") and hasattr(X, "__iter__")


def _check_messages(X: Any) -> None:
    """A 1-d sequence of str; anything else (a matrix, numbers, one bare str) is refused."""
    if hasattr(X, "tocsr"):
        raise InputTypeError(Errors.E001.format(type_name="a sparse matrix", record=0))
    if not _is_iterable(X) or getattr(X, "ndim", 1) != 1:
        raise InputTypeError(Errors.E001.format(type_name="str (pass a list of messages)",
                                                record=0))
    for i, text in enumerate(X):
        if not isinstance(text, str):
            raise InputTypeError(Errors.E001.format(type_name=type(text).__name__, record=i))
