"""Module paths as the user writes them in Python (``features[3].conv``, ``model[2]``): plain string
work, torch-free, so the renderer that ``headfit explain`` uses names modules the same way as the
lint, evidence and trace texts do."""

from __future__ import annotations


def module_expr(prefix: str, path: str) -> str:
    """Python that names the module at ``path``: ``("model", "classifier.1")`` -> ``model.classifier[1]``."""
    text = prefix
    for part in path.split(".") if path else []:
        text += f"[{part}]" if part.isdigit() else f".{part}"
    return text


def module_name(path: str) -> str:
    """A module path as the user writes it in Python, for every summary, fact and note that names a
    module: ``features.3.conv`` -> ``features[3].conv``, an ``nn.Sequential``'s child ``2`` ->
    ``model[2]`` (a bare `` `2` `` reads as a number), ``""`` (the model itself) -> ``<model>``."""
    if not path:
        return "<model>"
    text = module_expr("model", path)
    return text if path.split(".", 1)[0].isdigit() else text[len("model.") :]
