"""Plain option values are read at a glance (no pydantic TypeAdapter per option); each value
read so equals, with its type, what Typer's own adapter gives; every other value goes to Typer."""

from __future__ import annotations

import pytest
from typer._adapters import build_adapter
from typer.models import OptionInfo

from phiwatch.plain_options import _NOT_PLAIN, _at_a_glance

VALUES = ["5", "-3", "007", "-0", "1.5", "-2.25", "0.000001", "123456789012345678", "1234567890123456789",
          "abc", "", " 5", "5 ", "1e3", "1_000", "+5", "inf", "nan", "１２", 5, 0, 5.0, True, None,
          ["a", "b"], ("1", "2"), ["1", "x"], [], ()]  # fmt: skip


@pytest.mark.parametrize("annotation", [str, int, float, list[str], list[int], list[float]])
@pytest.mark.parametrize("value", VALUES)
def test_a_value_read_at_a_glance_is_what_typer_gives(annotation, value):
    plain = _at_a_glance(annotation, value)
    if plain is _NOT_PLAIN:
        return  # Typer's own coercion takes it
    typers = build_adapter(annotation, OptionInfo()).validate_python(value)
    assert plain == typers and type(plain) is type(typers)
    if isinstance(plain, list):
        assert [type(item) for item in plain] == [type(item) for item in typers]


def test_the_plain_reading_covers_the_common_values():
    assert _at_a_glance(int, "8") == 8 and _at_a_glance(float, "0.5") == 0.5 and _at_a_glance(str, "x") == "x"
    assert _at_a_glance(list[str], ("a",)) == ["a"]
    assert _at_a_glance(int, "1e3") is _NOT_PLAIN and _at_a_glance(int, True) is _NOT_PLAIN
