"""ClientPool loader on small crafted files: every malformed input is a DataFormatError naming
the file and the line, window or field; nothing in a file is ever executed."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from servegen_core.errors import DataFormatError
from servegen_core.sources.pool import load_pool

MODEL = "language/m-test"
GOOD_TRACE = "0,1.5,1.0,Gamma,1.0,0.6666666666666666\n600,0,0,,0,0\n1200,0.5,2.0,Weibull,0.5,3.0\n"
GOOD_DATASET = {
    "0": {"input_tokens": "{10: 0.25, 20: 0.75}", "output_tokens": "{5: 1.0}"},
    "21600": {"input_tokens": "{}", "output_tokens": "{}"},
}


def make_model(
    root: Path,
    *,
    trace: str | bytes | None = GOOD_TRACE,
    dataset: object | bytes | None = GOOD_DATASET,
) -> Path:
    """A model folder with client 0 (the files under test) and a good client 1."""
    folder = root / MODEL
    folder.mkdir(parents=True)
    if trace is not None:
        data = trace if isinstance(trace, bytes) else trace.encode()
        (folder / "chunk-0-trace.csv").write_bytes(data)
    if dataset is not None:
        data = dataset if isinstance(dataset, bytes) else json.dumps(dataset).encode()
        (folder / "chunk-0-dataset.json").write_bytes(data)
    (folder / "chunk-1-trace.csv").write_text(GOOD_TRACE)
    (folder / "chunk-1-dataset.json").write_text(json.dumps(GOOD_DATASET))
    return root


def load_error(root: Path) -> DataFormatError:
    with pytest.raises(DataFormatError) as info:
        load_pool(root, MODEL, use_cache=False)
    return info.value


def assert_error(err: DataFormatError, file: str, where: str | None, *problem: str) -> None:
    """The message names the file, the place and the problem."""
    text = str(err)
    assert err.path is not None and Path(err.path).name == file, text
    assert err.path in text
    if where is None:
        assert err.where is None, text
    else:
        assert err.where == where, text
        assert where in text
    for word in problem:
        assert re.search(word, text), (word, text)


def assert_not_quoted(err: DataFormatError, *cells: str) -> None:
    """Load errors never quote the file's cells: the place is named instead."""
    shown = f"{err.where}: {err.problem}"  # the path is the test's own folder
    assert shown in str(err)
    for cell in cells:
        assert cell not in shown, (cell, shown)


# ------------------------------------------------------------------------------------------
# The crafted good model loads (so the failures below are due to the one bad detail)
# ------------------------------------------------------------------------------------------


def test_crafted_good_model_loads(tmp_path: Path) -> None:
    pool = load_pool(make_model(tmp_path), MODEL, use_cache=False)
    assert pool.client_ids == ("0", "1")
    assert pool.windows.filter(pool.windows["client_id"] == "0").rows() == [
        ("0", 0, 600, 1.5, 1.0, "Gamma", 1.0, 0.6666666666666666),
        ("0", 600, 600, 0.0, 0.0, "", 0.0, 0.0),
        ("0", 1200, 600, 0.5, 2.0, "Weibull", 0.5, 3.0),
    ]
    assert pool.pdf("0", "input_tokens", 0).rows() == [(10.0, 0.25), (20.0, 0.75)]
    assert pool.length_windows.filter(pool.length_windows["client_id"] == "0")["active"].to_list() == [True, False]


def test_data_root_with_glob_characters_loads(tmp_path: Path) -> None:
    """Paths are file names, not glob patterns: a folder named "run[1]" is read as it is."""
    plain = load_pool(make_model(tmp_path / "plain"), MODEL, use_cache=False)
    pool = load_pool(make_model(tmp_path / "run[1]"), MODEL, use_cache=False)
    assert pool.client_ids == ("0", "1")
    assert pool.windows.drop("path", strict=False).equals(plain.windows.drop("path", strict=False))


# ------------------------------------------------------------------------------------------
# Trace CSV
# ------------------------------------------------------------------------------------------


def test_empty_trace(tmp_path: Path) -> None:
    assert_error(load_error(make_model(tmp_path, trace="")), "chunk-0-trace.csv", None, "empty file")


def test_truncated_trace_line(tmp_path: Path) -> None:
    err = load_error(make_model(tmp_path, trace=GOOD_TRACE + "1800,0.93"))
    assert_error(err, "chunk-0-trace.csv", "line 4", "expected 6 columns", "found 2")
    assert_not_quoted(err, "1800", "0.93")


def test_short_line_in_the_middle(tmp_path: Path) -> None:
    lines = GOOD_TRACE.splitlines()
    lines[1] = "600,0,0"
    err = load_error(make_model(tmp_path, trace="\n".join(lines) + "\n"))
    assert_error(err, "chunk-0-trace.csv", "line 2", "expected 6 columns", "found 3")


def test_too_many_columns(tmp_path: Path) -> None:
    err = load_error(make_model(tmp_path, trace=GOOD_TRACE + "1800,1,1,Gamma,1,1,7\n"))
    assert_error(err, "chunk-0-trace.csv", "line 4", "expected 6 columns", "found 7")


def test_blank_line(tmp_path: Path) -> None:
    lines = GOOD_TRACE.splitlines()
    err = load_error(make_model(tmp_path, trace=f"{lines[0]}\n\n{lines[1]}\n"))
    assert_error(err, "chunk-0-trace.csv", "line 2", "expected 6 columns", "found 1")


@pytest.mark.parametrize("value", ["abc", "1_0", " 1", "0x10", "1.0.0"])
def test_non_numeric_rate(tmp_path: Path, value: str) -> None:
    err = load_error(make_model(tmp_path, trace=GOOD_TRACE + f"1800,{value},1,Gamma,1,1\n"))
    assert_error(err, "chunk-0-trace.csv", "line 4, column rate_rps", "not a number")
    assert_not_quoted(err, value.strip())


def test_non_numeric_shape(tmp_path: Path) -> None:
    err = load_error(make_model(tmp_path, trace=GOOD_TRACE + "1800,1,1,Gamma,big,1\n"))
    assert_error(err, "chunk-0-trace.csv", "line 4, column shape", "not a number")
    assert_not_quoted(err, "big")


def test_header_line(tmp_path: Path) -> None:
    err = load_error(make_model(tmp_path, trace="start,rate,cv,pattern,shape,scale\n" + GOOD_TRACE))
    assert_error(err, "chunk-0-trace.csv", "line 1, column start_s", "not a number")
    assert_not_quoted(err, "start'", "rate")


def test_fractional_window_start(tmp_path: Path) -> None:
    err = load_error(make_model(tmp_path, trace=GOOD_TRACE + "1800.0,1,1,Gamma,1,1\n"))
    assert_error(err, "chunk-0-trace.csv", "line 4, column start_s", "whole number of seconds")
    assert_not_quoted(err, "1800")


@pytest.mark.parametrize("column,position", [("rate_rps", 1), ("cv", 2), ("shape", 4), ("scale", 5)])
def test_negative_values(tmp_path: Path, column: str, position: int) -> None:
    parts = ["1800", "1", "1", "Gamma", "1", "1"]
    parts[position] = "-0.25"
    err = load_error(make_model(tmp_path, trace=GOOD_TRACE + ",".join(parts) + "\n"))
    assert_error(err, "chunk-0-trace.csv", f"line 4, column {column}", "non-negative")
    assert_not_quoted(err, "0.25")


@pytest.mark.parametrize("value", ["nan", "NaN", "inf", "-inf"])
def test_nan_or_infinite_rate(tmp_path: Path, value: str) -> None:
    err = load_error(make_model(tmp_path, trace=GOOD_TRACE + f"1800,{value},1,Gamma,1,1\n"))
    assert_error(err, "chunk-0-trace.csv", "line 4, column rate_rps", "finite")


@pytest.mark.parametrize("pattern", ["Poisson", "gamma", "Gamma "])
def test_unknown_pattern(tmp_path: Path, pattern: str) -> None:
    err = load_error(make_model(tmp_path, trace=GOOD_TRACE + f"1800,1,1,{pattern},1,1\n"))
    assert_error(err, "chunk-0-trace.csv", "line 4, column pattern", "unknown arrival pattern")
    assert_not_quoted(err, repr(pattern), "Poisson", "gamma")


def test_empty_pattern_with_positive_rate(tmp_path: Path) -> None:
    err = load_error(make_model(tmp_path, trace=GOOD_TRACE + "1800,0.2,1,,1,1\n"))
    assert_error(err, "chunk-0-trace.csv", "line 4, column pattern", "empty pattern", "positive rate")
    assert_not_quoted(err, "0.2")


def test_unsorted_windows(tmp_path: Path) -> None:
    err = load_error(make_model(tmp_path, trace=GOOD_TRACE + "600,1,1,Gamma,1,1\n"))
    assert_error(err, "chunk-0-trace.csv", "line 4, column start_s", "not sorted")
    assert_not_quoted(err, "600")


def test_duplicate_window(tmp_path: Path) -> None:
    err = load_error(make_model(tmp_path, trace=GOOD_TRACE + "1200,1,1,Gamma,1,1\n"))
    assert_error(err, "chunk-0-trace.csv", "line 4, column start_s", "duplicate window start")
    assert_not_quoted(err, "1200")


def test_window_off_grid(tmp_path: Path) -> None:
    err = load_error(make_model(tmp_path, trace=GOOD_TRACE + "2000,1,1,Gamma,1,1\n"))
    assert_error(err, "chunk-0-trace.csv", "line 4, column start_s", "off the 600 s grid")
    assert_not_quoted(err, "2000")


def test_negative_window_start(tmp_path: Path) -> None:
    err = load_error(make_model(tmp_path, trace="-600,1,1,Gamma,1,1\n" + GOOD_TRACE))
    assert_error(err, "chunk-0-trace.csv", "line 1, column start_s", "negative window start")
    assert_not_quoted(err, "600")


def test_non_utf8_trace(tmp_path: Path) -> None:
    data = GOOD_TRACE.encode() + b"1800,1,1,Gam\xff\xfema,1,1\n"
    err = load_error(make_model(tmp_path, trace=data))
    assert_error(err, "chunk-0-trace.csv", "line 4", "UTF-8")


def test_non_utf8_in_number(tmp_path: Path) -> None:
    data = b"0,1\xe9,1,Gamma,1,1\n"
    err = load_error(make_model(tmp_path, trace=data))
    assert_error(err, "chunk-0-trace.csv", "line 1", "UTF-8")


# ------------------------------------------------------------------------------------------
# Dataset JSON: outer shape
# ------------------------------------------------------------------------------------------


def test_dataset_without_trace(tmp_path: Path) -> None:
    err = load_error(make_model(tmp_path, trace=None))
    assert_error(err, "chunk-0-dataset.json", None, "no trace file", "chunk-0-trace.csv")


def test_trace_without_dataset_is_loaded(tmp_path: Path) -> None:
    pool = load_pool(make_model(tmp_path, dataset=None), MODEL, use_cache=False)
    assert pool.clients_without_lengths == ("0",)
    assert pool.windows.filter(pool.windows["client_id"] == "0").height == 3
    assert "0" not in pool.length_windows["client_id"].to_list()


def test_empty_dataset(tmp_path: Path) -> None:
    err = load_error(make_model(tmp_path, dataset=b""))
    assert_error(err, "chunk-0-dataset.json", None, "empty file")


def test_invalid_json(tmp_path: Path) -> None:
    err = load_error(make_model(tmp_path, dataset=b'{"0": {\n  "input_tokens": '))
    assert_error(err, "chunk-0-dataset.json", "line 2, column 19", "invalid JSON")


@pytest.mark.parametrize("value,kind", [([1, 2], "list"), ("x", "str"), (3, "int"), (None, "NoneType")])
def test_dataset_not_an_object(tmp_path: Path, value: object, kind: str) -> None:
    err = load_error(make_model(tmp_path, dataset=json.dumps(value).encode()))
    assert_error(err, "chunk-0-dataset.json", None, "expected a JSON object", kind)


def test_window_not_an_object(tmp_path: Path) -> None:
    err = load_error(make_model(tmp_path, dataset={"0": ["{1: 1.0}"]}))
    assert_error(err, "chunk-0-dataset.json", "window 0", "expected an object of fields", "list")


def test_literal_not_a_string(tmp_path: Path) -> None:
    err = load_error(make_model(tmp_path, dataset={"0": {"input_tokens": {"1": 1.0}}}))
    assert_error(err, "chunk-0-dataset.json", "window 0, field input_tokens", "expected a string", "dict")


def test_window_key_not_a_number(tmp_path: Path) -> None:
    err = load_error(make_model(tmp_path, dataset={"noon": {"input_tokens": "{1: 1.0}"}}))
    assert_error(err, "chunk-0-dataset.json", "key 1 of the object", "whole number of seconds")
    assert_not_quoted(err, "noon")


def test_unsorted_length_windows(tmp_path: Path) -> None:
    data = {"21600": {"input_tokens": "{1: 1.0}"}, "0": {"input_tokens": "{1: 1.0}"}}
    err = load_error(make_model(tmp_path, dataset=data))
    assert_error(err, "chunk-0-dataset.json", "window 0", "not sorted")


def test_duplicate_length_window(tmp_path: Path) -> None:
    text = b'{"0": {"input_tokens": "{1: 1.0}"}, "0": {"input_tokens": "{2: 1.0}"}}'
    err = load_error(make_model(tmp_path, dataset=text))
    assert_error(err, "chunk-0-dataset.json", "window 0", "duplicate window")


def test_duplicate_field(tmp_path: Path) -> None:
    text = b'{"0": {"input_tokens": "{1: 1.0}", "input_tokens": "{2: 1.0}"}}'
    err = load_error(make_model(tmp_path, dataset=text))
    assert_error(err, "chunk-0-dataset.json", "window 0, field input_tokens", "duplicate field")


def test_length_window_off_grid(tmp_path: Path) -> None:
    data = {
        "0": {"input_tokens": "{1: 1.0}"},
        "21600": {"input_tokens": "{1: 1.0}"},
        "43200": {"input_tokens": "{1: 1.0}"},
        "50000": {"input_tokens": "{1: 1.0}"},
    }
    err = load_error(make_model(tmp_path, dataset=data))
    assert_error(err, "chunk-0-dataset.json", "window 50000", "off the 21600 s grid")


def test_non_utf8_dataset(tmp_path: Path) -> None:
    data = b'{"0": {\n"input_tokens": "{1: 1.0}\xff"}}'
    err = load_error(make_model(tmp_path, dataset=data))
    assert_error(err, "chunk-0-dataset.json", "line 2", "UTF-8")


# ------------------------------------------------------------------------------------------
# Dataset JSON: the dict literals (parsed as data, never executed)
# ------------------------------------------------------------------------------------------


def with_literal(literal: str, field: str = "input_tokens") -> dict:
    data = json.loads(json.dumps(GOOD_DATASET))
    data["21600"][field] = literal
    return data


@pytest.mark.parametrize(
    "literal",
    [
        "__import__('os').system('touch {marker}')",
        "{{1: __import__('os').system('touch {marker}')}}",
        "{{__import__('os').system('touch {marker}'): 1.0}}",
        "{{1: 0.5, 2: [__import__('os').system('touch {marker}'), 0.5][1]}}",
    ],
)
def test_code_in_literal_is_not_run(tmp_path: Path, literal: str) -> None:
    marker = tmp_path / "marker-created"
    text = literal.format(marker=marker)
    err = load_error(make_model(tmp_path / "data", dataset=with_literal(text)))
    assert_error(err, "chunk-0-dataset.json", "window 21600, field input_tokens", "number")
    assert not marker.exists()


@pytest.mark.parametrize(
    "literal,shown",
    [
        ("x", "expected a {number: number} dict literal"),  # a bare name
        ("{1: x}", "not a number at character 5"),  # a name as a value
        ("dict(a=1)", "expected a {number: number} dict literal"),  # a call
        ("{1: float('1')}", "not a number at character 5"),  # a call as a value
        ("{1: math.pi}", "not a number at character 5"),  # an attribute
        ("{'a': 1.0}", "not a number at character 2"),  # a string key
        ("{1: 'one'}", "not a number at character 5"),  # a string value
        ("{1: nan}", "not a number at character 5"),
        ("{inf: 1.0}", "not a number at character 2"),
        ("{(1, 2): 1.0}", "not a number at character 2"),
        ("{1, 2}", "malformed"),
        ("{1: {2: 1.0}}", "malformed"),
        ("{1: 1.0", "malformed"),
        ("{,}", "malformed"),
        ("{1: 0.5,, 2: 0.5}", "malformed"),
        ("{1: 0.5: 0.5}", "malformed"),  # two colons in one pair
        ("{1: 0.5, 2: 0.5: 7}", "malformed"),
        ("{1}", "malformed"),
        ("{1:}", "malformed"),
    ],
)
def test_literal_not_numbers(tmp_path: Path, literal: str, shown: str) -> None:
    err = load_error(make_model(tmp_path, dataset=with_literal(literal)))
    assert_error(err, "chunk-0-dataset.json", "window 21600, field input_tokens", re.escape(shown))
    assert "'" not in err.problem  # no text of the literal is quoted back
    assert_not_quoted(err, *[part for part in (literal, literal[1:-1]) if len(part) > 4])


def test_bad_literal_names_its_field(tmp_path: Path) -> None:
    err = load_error(make_model(tmp_path, dataset=with_literal("{1: y}", field="output_tokens")))
    assert_error(err, "chunk-0-dataset.json", "window 21600, field output_tokens", "not a number at character 5")
    assert_not_quoted(err, "'y'", "{1: y")


def test_negative_probability(tmp_path: Path) -> None:
    err = load_error(make_model(tmp_path, dataset=with_literal("{1: -0.5, 2: 1.5}")))
    assert_error(err, "chunk-0-dataset.json", "window 21600, field input_tokens", "non-negative")
    assert_not_quoted(err, "0.5", "1.5")


@pytest.mark.parametrize("literal,total", [("{1: 0.5, 2: 0.4}", "0.9"), ("{1: 0.5, 2: 0.500002}", r"1\.00000")])
def test_probabilities_not_summing_to_one(tmp_path: Path, literal: str, total: str) -> None:
    err = load_error(make_model(tmp_path, dataset=with_literal(literal)))
    assert_error(err, "chunk-0-dataset.json", "window 21600, field input_tokens", "sum to " + total, "not 1")


def test_probabilities_within_tolerance_accepted(tmp_path: Path) -> None:
    pool = load_pool(make_model(tmp_path, dataset=with_literal("{1: 0.5, 2: 0.5000004}")), MODEL, use_cache=False)
    assert pool.pdf("0", "input_tokens", 21600).rows() == [(1.0, 0.5), (2.0, 0.5000004)]


def test_duplicate_bin(tmp_path: Path) -> None:
    err = load_error(make_model(tmp_path, dataset=with_literal("{1: 0.5, 1: 0.5}")))
    assert_error(err, "chunk-0-dataset.json", "window 21600, field input_tokens", "duplicate bin")


def test_fractional_token_bin(tmp_path: Path) -> None:
    err = load_error(make_model(tmp_path, dataset=with_literal("{1.5: 1.0}")))
    assert_error(err, "chunk-0-dataset.json", "window 21600, field input_tokens", "whole numbers")
    assert_not_quoted(err, "1.5")


def test_reason_ratio_outside_unit_interval(tmp_path: Path) -> None:
    err = load_error(make_model(tmp_path, dataset=with_literal("{0.5: 0.5, 1.25: 0.5}", field="reason_ratio")))
    assert_error(err, "chunk-0-dataset.json", "window 21600, field reason_ratio", r"\[0, 1\]")
    assert_not_quoted(err, "1.25")


def test_error_in_later_file_of_a_batch(tmp_path: Path) -> None:
    """The failing literal is traced back to its own file among several parsed together."""
    root = make_model(tmp_path)
    folder = root / MODEL
    for client in range(2, 6):
        (folder / f"chunk-{client}-trace.csv").write_text(GOOD_TRACE)
        (folder / f"chunk-{client}-dataset.json").write_text(json.dumps(GOOD_DATASET))
    (folder / "chunk-4-dataset.json").write_text(json.dumps(with_literal("{3: oops}")))
    err = load_error(root)
    assert_error(err, "chunk-4-dataset.json", "window 21600, field input_tokens", "not a number at character 5")
    assert_not_quoted(err, "oops")
