"""The evaluation side: datasets (synthetic generator, real benign chat, PAN12 / eSPD).

It sits on top of the library (it reads and writes the interchange format) and is not
needed at run time by a provider.
"""

from .benign import benign_split_of, load_chitchat
from .pan12 import Pan12Corpus, load_espd, load_pan12
from .synth import NEGATIVE_SUBGROUPS, SUBGROUPS, generate

__all__ = [
    "NEGATIVE_SUBGROUPS",
    "SUBGROUPS",
    "Pan12Corpus",
    "benign_split_of",
    "generate",
    "load_chitchat",
    "load_espd",
    "load_pan12",
]
