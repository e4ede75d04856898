import enum

import numpy as np
import pytest

from spladekit.checks import (ArgumentError, check_int, check_number, check_positive_int, check_texts, is_integer,
                              parse_enum, require)


def test_is_integer_accepts_numpy_and_rejects_bool_and_float():
    assert [is_integer(v) for v in (3, np.int64(3), np.uint8(1), True, 3.0, "3", None)] == [
        True, True, True, False, False, False, False]


def test_check_int_returns_python_int_and_names_the_argument():
    value = check_int(np.int32(7), "top_k", minimum=1)
    assert value == 7 and type(value) is int
    assert check_int(None, "top_k", allow_none=True) is None
    with pytest.raises(ArgumentError, match=r"top_k must be an integer >= 1 and <= 5, got 6\."):
        check_int(6, "top_k", minimum=1, maximum=5)
    with pytest.raises(TypeError, match=r"batch_size must be a positive integer \(texts per batch\), got 2\.5 \(float\)"):
        check_positive_int(2.5, "batch_size", "texts per batch")
    with pytest.raises(ValueError, match="got True"):
        check_positive_int(True, "n")


def test_check_number_rejects_nan_and_bounds():
    assert check_number(np.float32(0.5), "w", minimum=0) == 0.5
    for bad in (float("nan"), float("inf"), -1, "1", True):
        with pytest.raises(ArgumentError, match="w must be a finite number >= 0"):
            check_number(bad, "w", minimum=0)
    with pytest.raises(ArgumentError, match="> 0"):
        check_number(0, "w", minimum=0, exclusive_minimum=True)


class Color(str, enum.Enum):
    RED = "red"
    DARK_BLUE = "dark-blue"


def test_parse_enum_by_value_name_and_alias():
    assert parse_enum(Color, "red", "color") is Color.RED
    assert parse_enum(Color, "DARK_BLUE", "color") is Color.DARK_BLUE
    assert parse_enum(Color, "navy", "color", aliases={"navy": Color.DARK_BLUE}) is Color.DARK_BLUE
    with pytest.raises(ArgumentError, match=r"color must be one of \['red', 'dark-blue', 'navy'\], got 'green'"):
        parse_enum(Color, "green", "color", aliases={"navy": Color.DARK_BLUE})


def test_require_names_the_extra_and_pip_package():
    assert require("json", "none").dumps([1]) == "[1]"
    with pytest.raises(ImportError, match=r"pip install 'spladekit\[seismic\]' \(or pip install 'pyseismic-lsr'\)"):
        require("no_such_package_xyz", "seismic", pip_name="pyseismic-lsr")


def test_require_names_the_feature_that_needs_the_package():
    with pytest.raises(ImportError, match=r"^The Milvus connector needs the 'no_such_pymilvus' package, which is not "
                                          r"installed: pip install 'spladekit\[milvus\]' \(or pip install "
                                          r"'pymilvus\[milvus-lite\]'\)\.$"):
        require("no_such_pymilvus", "milvus", "pymilvus[milvus-lite]", feature="The Milvus connector")


def test_parse_enum_names_what_else_is_accepted():
    with pytest.raises(ArgumentError, match=r"^batch_sampler must be one of \['red', 'dark-blue'\] \(or a sampler "
                                            r"class/callable\), got 'green'\.$"):
        parse_enum(Color, "green", "batch_sampler", also="a sampler class/callable")


def test_check_texts_returns_python_strings_and_names_the_bad_row():
    texts = check_texts(np.array(["a", "b"]), "corpus")
    assert texts == ["a", "b"] and all(type(t) is str for t in texts)
    assert check_texts(("x", "y"), "corpus") == ["x", "y"]
    assert check_texts(iter(["z"]), "corpus") == ["z"]
    assert check_texts("one text", "inputs", accept_string=True) == ["one text"]
    with pytest.raises(ArgumentError, match=r"corpus must be a list of strings, got one string \('abc'\); wrap it "
                                            r"in a list: \[corpus\]\."):
        check_texts("abc", "corpus")
    with pytest.raises(ArgumentError, match=r"corpus\[2\] is a NoneType \(None\), not a string.*None is not an "
                                            "empty string"):
        check_texts(["a", "b", None], "corpus")
    with pytest.raises(ArgumentError, match=r"inputs\[0\] is a bytes \(b'x'\)"):
        check_texts([b"x"], "inputs", accept_string=True)
    for bad, kind in ((42, "int"), ({"a": "b"}, "dict"), (b"ab", "bytes")):
        with pytest.raises(ArgumentError, match=rf"texts must be a list of strings, got {kind}\."):
            check_texts(bad, "texts")
    with pytest.raises(ArgumentError, match=r"inputs must be a string or a list of strings, got int\."):
        check_texts(42, "inputs", accept_string=True)


def test_choice_enum_accepts_names_in_any_case_and_lists_the_values():
    from spladekit.checks import Choice

    class Colour(Choice):
        DARK_BLUE = "dark-blue"
        RED = "red"

        __noun__ = "colour"

    assert [Colour("dark-blue"), Colour("Dark_Blue"), Colour("RED")] == [Colour.DARK_BLUE, Colour.DARK_BLUE, Colour.RED]
    assert list(Colour) == [Colour.DARK_BLUE, Colour.RED] and Colour.RED == "red"
    with pytest.raises(ArgumentError, match=r"^'green' is not a colour; choose one of \['dark-blue', 'red'\]\.$"):
        Colour("green")
    with pytest.raises(ArgumentError, match=r"^paint must be one of \['dark-blue', 'red'\], got 'green'\.$"):
        parse_enum(Colour, "green", "paint")
