"""Pydantic validation errors as the one line a user reads: the dotted key, what was expected,
the value given, and for a misspelt key the closest known one (``did you mean train.dim?``)."""

from __future__ import annotations

import difflib
from typing import Any

from pydantic import BaseModel


def suggestion(key: str, known: list[str], prefix: str = "") -> str:
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    return f" (did you mean {prefix}{close[0]}?)" if close else ""


def _model_at(root: type[BaseModel], location: tuple[Any, ...]) -> type[BaseModel] | None:
    """The model class that holds the keys at ``location`` (None inside free-form mappings)."""
    model: Any = root
    mapping_key = False  # the part after a dict[str, X] field is a key of that mapping
    for part in location:
        if mapping_key:
            mapping_key = False
            continue
        if not _is_model(model):
            return None
        field = model.model_fields.get(str(part))
        if field is None:
            return None
        annotation = field.annotation
        mapping_key = getattr(annotation, "__origin__", None) is dict
        # X | None -> X; dict[str, X] -> X (for the part after the key)
        candidates = [annotation] + list(getattr(annotation, "__args__", ()))
        model = next((c for c in candidates if _is_model(c)), annotation)
    return model if _is_model(model) else None


def _is_model(value: Any) -> bool:
    return isinstance(value, type) and issubclass(value, BaseModel)


def _dotted(location: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in location if not str(part).startswith("function-"))


def _short(value: Any, limit: int = 120) -> str:
    """``repr(value)``, cut to ``limit`` characters: an error line stays one readable line."""
    shown = repr(value)
    return shown if len(shown) <= limit else f"{shown[:limit]}... ({len(shown)} characters)"


def one_line(error: dict[str, Any], root: type[BaseModel]) -> str:
    """One pydantic error as ``key: what was expected (got value)``; ``root`` is the schema."""
    location = tuple(part for part in error["loc"] if not str(part).startswith("function-"))
    key = _dotted(location)
    if error["type"] == "extra_forbidden":
        holder = _model_at(root, location[:-1])
        known = [str(name) for name in holder.model_fields] if holder is not None else []
        parent = _dotted(location[:-1])
        return f"{key}: unknown key" + suggestion(str(location[-1]), known,
                                                   prefix=f"{parent}." if parent else "")
    if error["type"] == "missing":
        return f"{key}: missing (required)"
    message = error["msg"]
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    message = message.replace("Input should be", "must be").replace("input should be", "must be")
    value = error.get("input")
    shown = "" if error["type"] == "value_error" or isinstance(value, dict) else f" (got {_short(value)})"
    return f"{key}: {message}{shown}" if key else f"{message}{shown}"
