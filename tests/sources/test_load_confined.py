"""sources.load.load_source(spec, roots=...): the spec -> source door confines itself."""

from __future__ import annotations

import shutil

import pytest

from servegen_core.errors import SpecError
from servegen_core.paths import PathNotAllowedError, confine, demo_data_dir
from servegen_core.sources.load import load_source, source_location
from servegen_core.spec import ServeGenSource, Span, TraceSource, WorkloadSpec

HEADER = "timestamp_s,client_id,input_tokens,output_tokens\n"


def trace(path, n=50):
    path.write_text(HEADER + "".join(f"{i * 2},a,{10 + i},5\n" for i in range(n)))
    return path


@pytest.fixture
def layout(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    trace(root / "in.csv")
    trace(outside / "secret.csv")
    shutil.copytree(demo_data_dir() / "servegen" / "language", outside / "servegen" / "language")
    (root / "link.csv").symlink_to(outside / "secret.csv")
    (root / "loop").symlink_to(root / "loop")
    return root, outside


def spec_for(source, base_dir=None):
    return WorkloadSpec(source=source, span=Span(0, 600), base_dir=base_dir)


def refusal(spec, roots):
    with pytest.raises(PathNotAllowedError) as info:
        load_source(spec, roots=roots)
    return str(info.value)


def test_load_source_refuses_every_way_out_with_one_message(layout):
    root, outside = layout
    roots = (root,)
    texts = {
        "absolute": str(outside / "secret.csv"),
        "missing": str(outside / "missing.csv"),
        "dotdot": "../outside/secret.csv",
        "link": "link.csv",
        "loop": "loop/x.csv",
    }
    messages = {}
    for name, text in texts.items():
        messages[name] = refusal(spec_for(TraceSource(path=text)), roots)
        assert messages[name].startswith(f"refused: {text} is outside the data folders this dashboard may read ({root.resolve()};")
    # the message depends on the text only, never on what exists there
    assert messages["absolute"].replace("secret", "X") == messages["missing"].replace("missing", "X")
    assert "cannot be resolved" not in messages["loop"]
    # ~ is not expanded under roots: it is a folder named "~" inside the root
    with pytest.raises(SpecError, match="trace file not found: " + str(root.resolve() / "~" / "x.csv")):
        load_source(spec_for(TraceSource(path="~/x.csv")), roots=roots)
    for data_dir, model in ((str(outside / "servegen"), "language/demo-chat"), ("demo", "../..")):
        assert refusal(spec_for(ServeGenSource(data_dir, model)), roots).startswith("refused: ")


def test_load_source_reads_inside_the_roots_and_unconfined_without_them(layout):
    root, outside = layout
    pool = load_source(spec_for(TraceSource(path="in.csv")), roots=(root,))  # relative: looked up under the root
    assert pool.client_ids == ("a",)
    pool = load_source(spec_for(TraceSource(path="secret.csv"), base_dir=str(outside)), roots=(root, outside))
    assert pool.client_ids == ("a",)
    demo = load_source(spec_for(ServeGenSource("demo", "language/demo-chat")), roots=(demo_data_dir(),))
    assert demo.client_ids
    # the command line passes no roots: any path the user can read
    assert load_source(spec_for(TraceSource(path=str(outside / "secret.csv")))).client_ids == ("a",)
    assert source_location(spec_for(TraceSource(path=str(outside / "secret.csv"))), str(outside / "secret.csv"), roots=None) == (
        outside / "secret.csv"
    ).resolve()


def test_confine_names_only_the_folders_it_is_told_to(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    assert confine("x.csv", (a, b)) == a.resolve() / "x.csv"
    with pytest.raises(PathNotAllowedError) as info:
        confine("/etc/passwd", (a, b), named=(a,))
    assert f"({a.resolve()};" in str(info.value) and str(b) not in str(info.value)
    for text, expected in (("", "refused: an empty path"), ("a\x00b", "refused: a path cannot contain a NUL character")):
        with pytest.raises(PathNotAllowedError, match=expected):
            confine(text, (a,))
    with pytest.raises(PathNotAllowedError) as info:
        confine("/\x1b[31mred", (a,))  # not under a: the text is shown escaped
    assert "\x1b" not in str(info.value)
