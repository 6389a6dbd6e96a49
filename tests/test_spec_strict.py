"""The spec is strict (issue 22, item 5): duplicate keys are refused naming the key path, a NUL
character in a path is a spec error (exit 2, not an internal error), and user values in error
messages are capped and shown with control and bidirectional characters escaped."""

from __future__ import annotations

import json

import pytest
from _cli import error_line, run

from servegen_core.errors import QUOTE_LIMIT, DataFormatError, SpecError, printable, quoted, safe_message
from servegen_core.spec import ServeGenSource, TraceSource, WorkloadSpec
from servegen_core.sources.traces import load_trace

BASE = '"schema_version": 1, "span": {"start_s": 0, "duration_s": 60}'
UNSAFE = "\x1b\x07\x00\u202e\u2028\u200f"


def _spec_text(source: str, extra: str = "") -> str:
    return "{" + BASE + ', "source": ' + source + extra + "}"


def _assert_escaped(text: str) -> None:
    for ch in UNSAFE:
        assert ch not in text, (ch, text)


# --------------------------------------------------------------------------- duplicate keys


@pytest.mark.parametrize(
    ("text", "key"),
    [
        (_spec_text('{"kind": "trace", "path": "a.csv", "path": "b.csv"}'), "source.path"),
        (_spec_text('{"kind": "servegen", "data_dir": "demo", "model": "language/m-large"}', ', "seed": 1, "seed": 2'), "seed"),
        ('{"schema_version": 1, "schema_version": 1, "source": {}, "span": {}}', "schema_version"),
        (
            _spec_text('{"kind": "servegen", "data_dir": "demo", "model": "a/b"}', ', "rate": {"kind": "constant", "rps": 1, "rps": 2}'),
            "rate.rps",
        ),
        (
            _spec_text('{"kind": "servegen", "data_dir": "demo", "model": "a/b"}', ', "rate": {"points": [[0, 1], {"t": 1, "t": 2}]}'),
            "rate.points[1].t",
        ),
    ],
)
def test_duplicate_keys_are_refused_naming_the_key(text, key):
    json.loads(text)  # valid JSON: the last value would win silently
    with pytest.raises(SpecError) as info:
        WorkloadSpec.from_json(text)
    assert info.value.key == key
    assert str(info.value) == (
        f"spec key '{key}': the key appears more than once in its object; a spec names each key once (remove the extra ones)"
    )


def test_duplicate_keys_in_a_spec_file_name_the_file_and_exit_2(tmp_path, capsys):
    spec = tmp_path / "dup.json"
    spec.write_text(_spec_text('{"kind": "trace", "path": "x.csv", "path": "y.csv"}'))
    with pytest.raises(SpecError, match=rf"spec key 'source.path': the key appears more than once .*\(in {spec}\)"):
        WorkloadSpec.from_file(spec)
    code, _out, err = run(capsys, "generate", "--spec", spec, "-f", "mooncake", "-o", tmp_path / "w.jsonl")
    assert code == 2
    assert "spec key 'source.path': the key appears more than once" in error_line(err)
    assert not (tmp_path / "w.jsonl").exists()


def test_a_spec_without_duplicates_still_parses(demo_dir):
    spec = WorkloadSpec.from_json(_spec_text('{"kind": "servegen", "data_dir": "demo", "model": "language/m-large"}', ', "seed": 3'))
    assert spec.seed == 3 and WorkloadSpec.from_json(spec.to_json()) == spec


# --------------------------------------------------------------------------- NUL in paths


def test_nul_in_source_path_is_a_spec_error():
    text = _spec_text('{"kind": "trace", "path": "a\\u0000b.csv", "preset": "azure"}')
    with pytest.raises(SpecError) as info:
        WorkloadSpec.from_json(text)
    assert info.value.key == "source.path"
    assert str(info.value) == "spec key 'source.path': a path cannot contain a NUL character, got 'a\\x00b.csv'"
    with pytest.raises(SpecError, match="source.path.*NUL"):
        TraceSource(path="x\x00.csv")
    with pytest.raises(SpecError, match="source.data_dir.*NUL"):
        ServeGenSource(data_dir="d\x00", model="a/b")
    with pytest.raises(SpecError, match="base_dir.*NUL"):
        WorkloadSpec.from_json(_spec_text('{"kind": "trace", "path": "a.csv"}'), base_dir="/tmp/\x00")


def test_nul_in_source_path_exits_2_from_the_cli(tmp_path, capsys):
    spec = tmp_path / "nul.json"
    spec.write_text(_spec_text('{"kind": "trace", "path": "a\\u0000b.csv", "preset": "azure"}'))
    code, _out, err = run(capsys, "generate", "--spec", spec, "-f", "mooncake", "-o", tmp_path / "w.jsonl")
    assert code == 2  # was 3: "internal error: ValueError: embedded null byte"
    line = error_line(err)
    assert "a path cannot contain a NUL character" in line and "internal error" not in err
    assert "\x00" not in err


# --------------------------------------------------------------------------- quoted input


def test_quoted_caps_long_values_and_escapes_unsafe_characters():
    long = "m" * 900_000
    assert quoted(long) == repr("m" * QUOTE_LIMIT) + "... (900,000 characters)"
    assert quoted("ok") == "'ok'" and quoted(12) == "12" and quoted(["a", 1]) == "['a', 1]"
    assert quoted("a\x1b[31mb\u202ec\u2028d") == "'a\\x1b[31mb\\u202ec\\u2028d'"
    assert printable("a\x1b[2Jb\u202e/\u2028x") == "a\\x1b[2Jb\\u202e/\\u2028x"
    assert printable("é中文 tab") == "é中文 tab"  # printable text is shown as it is
    assert len(quoted(list(range(200_000)))) < QUOTE_LIMIT + 40
    assert safe_message("line 1\nline\t2 \u202e") == "line 1\nline\t2 \\u202e"
    assert len(safe_message("x" * 10**6)) < 4100


def test_a_900000_character_model_name_gives_a_short_error(tmp_path, capsys):
    model = "m" * 900_000
    with pytest.raises(SpecError) as info:
        ServeGenSource(data_dir="demo", model=model)
    assert len(str(info.value)) < 400 and str(info.value).endswith("... (900,000 characters)")
    spec = tmp_path / "long.json"
    spec.write_text(_spec_text(json.dumps({"kind": "servegen", "data_dir": "demo", "model": "a/" + model})))
    code, _out, err = run(capsys, "generate", "--spec", spec, "-f", "mooncake", "-o", tmp_path / "w.jsonl")
    assert code == 2
    assert len(error_line(err)) < 5000  # was a 900 KB line
    with pytest.raises(SpecError, match=r"spec key 'source.path': a path is at most 4,096 bytes, got 'mmm.*\.\.\. \(900,004 characters\)$"):
        WorkloadSpec.from_json(_spec_text(json.dumps({"kind": "trace", "path": model + ".csv"})))
    with pytest.raises(SpecError, match="a file or folder name is at most 255 bytes"):
        TraceSource(path="data/" + "n" * 256 + ".csv")
    with pytest.raises(SpecError, match="source.model"):  # a lone surrogate is measured, not an internal error
        ServeGenSource(data_dir="demo", model="a/" + "\ud800" * 100)


def test_control_and_bidi_characters_in_user_values_are_escaped(tmp_path, capsys):
    evil = "c\x1b[2J\u202eid\u2028x"
    with pytest.raises(SpecError) as info:
        WorkloadSpec.from_dict(
            {"schema_version": 1, "span": {"start_s": 0}, "source": {"kind": "servegen", "data_dir": "demo", "model": "a/b"},
             "clients": {"mode": "ids", "ids": [evil, evil]}}
        )
    _assert_escaped(str(info.value))
    assert "'c\\x1b[2J\\u202eid\\u2028x'" in str(info.value)
    with pytest.raises(SpecError) as info:  # an unknown key: the key itself is escaped
        WorkloadSpec.from_json("{" + BASE + ', "source": {"kind": "trace", "path": "a.csv"}, ' + json.dumps(evil) + ": 1}")
    assert str(info.value).startswith("spec key 'c\\x1b[2J\\u202eid\\u2028x': unknown key")
    spec = tmp_path / "evil.json"
    spec.write_text(_spec_text(json.dumps({"kind": "servegen", "data_dir": "demo", "model": "a/" + evil})))
    code, _out, err = run(capsys, "generate", "--spec", spec, "-f", "mooncake", "-o", tmp_path / "w.jsonl")
    assert code == 2
    _assert_escaped(err)


def test_trace_errors_escape_column_names_and_file_names(tmp_path):
    evil = "ts\x1b]0;pwned\x07\u202e"
    path = tmp_path / "t\u202e.csv"
    path.write_text(f"{evil},input,output\n1,2,3\n")
    with pytest.raises(DataFormatError) as info:
        load_trace(path, preset="generic", columns={"timestamp": "nope", "input_tokens": "input", "output_tokens": "output"},
                   time_unit="s")
    text = str(info.value)
    _assert_escaped(text)
    assert "t\\u202e.csv" in text and "'ts\\x1b]0;pwned\\x07\\u202e'" in text
