"""Option values read at a glance: Typer's coercion without a pydantic TypeAdapter per option.

Typer (0.29) builds a pydantic TypeAdapter for every parameter of the command that runs,
given or not: for `scan` that is some forty schemas, a large part of a scan's start-up.
`install` puts in front of each plain option (str, int, float, a list of them) a coercion
that gives the very value Typer's adapter gives for the values it reads at a glance (an
unset option, a string, a number of the right type, digits); any other value, and every
option with a parser, bounds or a file type, goes to Typer's own coercion, built then, so
its checks and error messages stay Typer's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, get_args, get_origin

from typer._coercion import RuntimeParam, build_runtime_param

_INT = re.compile(r"-?[0-9]{1,18}")
_FLOAT = re.compile(r"-?[0-9]{1,15}(?:\.[0-9]{1,15})?")
_NOT_PLAIN = object()


def _at_a_glance(annotation: Any, value: Any) -> Any:
    """What Typer's adapter gives for `value`, or _NOT_PLAIN when it takes a closer look."""
    kind = type(value)
    if annotation is str and kind is str:
        return value
    if annotation is int and (kind is int or (kind is str and _INT.fullmatch(value))):
        return int(value)
    if annotation is float and (kind in (int, float) or (kind is str and _FLOAT.fullmatch(value))):
        return float(value)
    if get_origin(annotation) is list and kind in (list, tuple):
        items = [_at_a_glance(get_args(annotation)[0], item) for item in value]
        if _NOT_PLAIN not in items:
            return items
    return _NOT_PLAIN


@dataclass(frozen=True)
class _Plain(RuntimeParam):
    def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
        plain = _at_a_glance(self.annotation, value)
        if plain is not _NOT_PLAIN:
            return plain
        typers = build_runtime_param(param.type_descriptor)
        param._runtime_param = typers
        return typers._coerce_value(value, param=param, ctx=ctx)


def install(params: list[Any]) -> list[Any]:
    """Plain coercion for the command's parameters (its help and completion options too) Typer
    would otherwise build an adapter for; the same list back."""
    for param in params:
        descriptor = getattr(param, "type_descriptor", None)
        if descriptor is None or getattr(param, "_runtime_param", False) is not None:
            continue
        info = descriptor.parameter_info
        if descriptor.file_annotation is not None or info.parser is not None:
            continue
        if info.min is not None or info.max is not None or info.clamp:
            continue
        param._runtime_param = _Plain(parameter_info=info, annotation=descriptor.annotation)
    return params
