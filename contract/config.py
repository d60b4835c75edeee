"""Strict, bounded loading of the project's YAML files and config mappings: one loader for all.

Every config the tool reads (accelerator YAML, sweep specs, study configs, model configs) goes
through :func:`load_yaml` and :func:`check_fields`, so the rules are the same everywhere:

* a mapping key given twice is an error naming both lines (PyYAML keeps the last silently);
* only plain YAML: ``!!python`` and other non-standard tags are refused (safe loader);
* numbers follow YAML 1.2: ``2e3`` and ``1E-5`` are floats, not strings;
* bounded input: at most :data:`MAX_YAML_BYTES` of text and :data:`MAX_YAML_NODES` nodes once
  aliases are expanded, so an alias bomb ("billion laughs") is refused before it is built;
* an unknown or missing field is an error naming the field and the known ones;
* error messages quote at most :data:`MAX_QUOTE` characters of a value.

This module imports nothing of the project.
"""
from __future__ import annotations

import dataclasses
import math
import numbers
import re
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml

from contract.io import check_input_file
from contract.limits import limit

MAX_YAML_BYTES = limit("config file size", 1 << 20, unit="bytes", area="config files",
                       applies_to="accelerator YAML, sweep and serving specs, model and study configs",
                       why="the largest config shipped is ~3 KB")
MAX_YAML_NODES = limit("config values after alias expansion", 100_000, unit="values", area="config files",
                       applies_to="every YAML file",
                       why="an alias bomb of 3 KB expands to 10^9 values; refused in milliseconds")
MAX_QUOTE = 200               # characters of a value quoted in an error message


def quote(value: Any, limit: int = MAX_QUOTE) -> str:
    """``repr(value)`` cut to ``limit`` characters, for error messages."""
    text = repr(value)
    if len(text) <= limit:
        return text
    tail = f"... ({len(text)} chars)"
    return text[: max(limit - len(tail), 0)] + tail


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 floats and duplicate keys refused."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.get(key)
            except TypeError:          # unhashable key: let SafeLoader report it
                continue
            if first is not None:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {quote(key)} (first given on line {first.line + 1})",
                    key_node.start_mark)
            seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


# YAML 1.2 core-schema floats: an exponent without a dot is a float (PyYAML's 1.1 rule says str).
_FLOAT_12 = re.compile(r"^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$")
_StrictLoader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT_12, list("-+.0123456789"))


def _expanded_size(node: yaml.Node, memo: dict[int, int], limit: int) -> int:
    """Number of nodes ``node`` stands for once every alias is expanded (stops past ``limit``)."""
    key = id(node)
    if key in memo:
        return memo[key]
    memo[key] = limit + 1            # a node that refers to itself counts as too large
    size = 1
    if isinstance(node, yaml.SequenceNode):
        for child in node.value:
            size += _expanded_size(child, memo, limit)
            if size > limit:
                break
    elif isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            size += _expanded_size(k, memo, limit) + _expanded_size(v, memo, limit)
            if size > limit:
                break
    memo[key] = size
    return size


def _yaml_error(e: yaml.YAMLError, where: str) -> ValueError:
    mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
    at = f"{where}, line {mark.line + 1}, column {mark.column + 1}" if mark is not None else where
    what = getattr(e, "problem", None) or str(e)
    ctx = getattr(e, "context", None)
    msg = f"{at}: invalid YAML: {what}" + (f" ({ctx})" if ctx else "")
    return ValueError(msg[: 4 * MAX_QUOTE])


def parse_yaml(text: str, where: str = "YAML") -> Any:
    """Parse YAML text under the rules above; any failure is a ``ValueError`` naming ``where``."""
    if not isinstance(text, str):
        raise TypeError(f"{where}: expected YAML text, got {type(text).__name__}")
    if len(text.encode("utf-8", "replace")) > MAX_YAML_BYTES:
        raise ValueError(f"{where}: larger than {MAX_YAML_BYTES} bytes; a config is a few KB")
    loader = None
    try:
        loader = _StrictLoader(text)
        node = loader.get_single_node()
        if node is None:
            return None
        if _expanded_size(node, {}, MAX_YAML_NODES) > MAX_YAML_NODES:
            raise ValueError(f"{where}: more than {MAX_YAML_NODES} values once aliases are expanded "
                             f"(an alias bomb?); refused")
        return loader.construct_document(node)
    except yaml.YAMLError as e:
        raise _yaml_error(e, where) from None
    except RecursionError:
        raise ValueError(f"{where}: nested too deeply") from None
    finally:
        if loader is not None:
            loader.dispose()


def load_yaml(path: str | Path) -> Any:
    """Read and parse one YAML file (see :func:`parse_yaml`); a missing file is ``FileNotFoundError``."""
    path = check_input_file(path, what="file", expected="a YAML file", max_bytes=MAX_YAML_BYTES,
                            why="a config is a few KB")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not UTF-8 text") from None
    return parse_yaml(text, where=str(path))


def check_fields(raw: Any, known: Iterable[str], where: str,
                 required: Iterable[str] = ()) -> dict[str, Any]:
    """``raw`` as a dict after checking it is a mapping with no unknown and no missing field."""
    if not isinstance(raw, Mapping):
        raise ValueError(f"{where}: expected a mapping of fields, got {type(raw).__name__}")
    known = list(known)
    unknown = [k for k in raw if k not in known]
    if unknown:
        raise ValueError(f"{where}: unknown field(s) {quote(sorted(map(str, unknown)))}; known: {sorted(known)}")
    missing = sorted(set(required) - set(raw))
    if missing:
        raise ValueError(f"{where}: missing field(s) {missing}")
    return dict(raw)


def dataclass_fields(raw: Any, cls: type, where: str) -> dict[str, Any]:
    """:func:`check_fields` against the fields of dataclass ``cls`` (fields without default are required)."""
    fields = dataclasses.fields(cls)
    required = [f.name for f in fields
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    return check_fields(raw, [f.name for f in fields], where, required)


def check_number(value: Any, field: str, *, integer: bool = False, lo: float | None = None,
                 hi: float | None = None, lo_open: bool = False, unit: str = "") -> int | float:
    """``value`` as a finite int (``integer``) or float within ``[lo, hi]`` (``(lo, hi]`` with ``lo_open``).

    The one number check of the project: a bool, a string, NaN or infinity, a float where an integer is
    expected, or a value out of range is a ``ValueError`` naming ``field``, the value and the range.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{field}: expected {'an integer' if integer else 'a number'}, got {quote(value)}")
    if integer and not isinstance(value, numbers.Integral):
        raise ValueError(f"{field}: expected an integer, got {quote(value)}")
    v = int(value) if integer else float(value)
    if not integer and not math.isfinite(v):
        raise ValueError(f"{field}: expected a finite number, got {quote(value)}")
    below = lo is not None and (v <= lo if lo_open else v < lo)
    above = hi is not None and v > hi
    if below or above:
        left = "(" if lo_open else "["
        rng = f"{left}{'-inf' if lo is None else f'{lo:g}'}, {'inf' if hi is None else f'{hi:g}'}]"
        raise ValueError(f"{field} = {quote(value)} is outside {rng}{' ' + unit if unit else ''}")
    return v
