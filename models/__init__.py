"""The shipped risk model: ``model.onnx``, ``metadata.json`` and ``model_card.md``.

Installed as ``classifier.models`` (the repository keeps the folder at its top level);
loaded through :mod:`importlib.resources` by :meth:`classifier.RiskModel.load`.
"""
