"""JSON for the hot path without importing `json` (which pulls in re and enum: ~6 ms per call).

`scrun state` is called by engines on every ps/inspect; a bare Python start is ~7 ms, so the
import alone would nearly double it. The C accelerator `_json` that `json` itself uses does the
work here; without it (a Python built without _json) we fall back to `json`.
"""
from __future__ import annotations


try:
    import _json

    class _Context:
        # The attributes json.decoder.JSONDecoder hands to the C scanner, with json's defaults.
        strict = True
        object_hook = None
        object_pairs_hook = None
        parse_float = float
        parse_int = int
        memo: dict = {}

        @staticmethod
        def parse_constant(name: str) -> float:
            return {"-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan")}[name]

    _scan = _json.make_scanner(_Context())
    _quote = _json.encode_basestring_ascii
except ImportError:  # pragma: no cover - CPython always has _json
    _json = None  # type: ignore[assignment]


def loads(text: str) -> object:
    if _json is None:
        import json

        return json.loads(text)
    start = len(text) - len(text.lstrip())
    try:
        value, end = _scan(text, start)
    except StopIteration:
        raise ValueError("not JSON") from None
    finally:
        _Context.memo.clear()
    if text[end:].strip():
        raise ValueError(f"extra data after JSON at offset {end}")
    return value


def dumps(value: object, indent: int | None = None, _level: int = 0) -> str:
    """JSON text for dicts, lists, str, int, float, bool and None (what scrun writes)."""
    if _json is None:
        import json

        return json.dumps(value, indent=indent)
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return _quote(value)
    if isinstance(value, int):
        return int.__repr__(value)
    if isinstance(value, float):
        if value != value:
            return "NaN"
        if value in (float("inf"), float("-inf")):
            return "Infinity" if value > 0 else "-Infinity"
        return float.__repr__(value)
    pad = "" if indent is None else "\n" + " " * (indent * (_level + 1))
    end = "" if indent is None else "\n" + " " * (indent * _level)
    sep = "," if indent is None else ","
    if isinstance(value, dict):
        if not value:
            return "{}"
        colon = ":" if indent is None else ": "
        items = [pad + _quote(str(k)) + colon + dumps(v, indent, _level + 1) for k, v in value.items()]
        return "{" + sep.join(items) + end + "}"
    if isinstance(value, (list, tuple)):
        if not value:
            return "[]"
        return "[" + sep.join(pad + dumps(v, indent, _level + 1) for v in value) + end + "]"
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")
