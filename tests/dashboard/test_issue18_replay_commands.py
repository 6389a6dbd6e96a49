"""Issue 18 point 9 on the Export page: for every format the page prints the replay commands of the
core (``usage_hint``) as shown, each benchmark command with the model and the server as placeholders
the user fills (the printed commands' own argument parsers run in tests/replay/test_replay_commands.py)."""

from __future__ import annotations

from _dash import Dashboard

from servegen_core.export.formats import FORMATS, PLACEHOLDERS, export_block_size, replay_commands, usage_hint
from servegen_core.generate.compose import plan_workload
from servegen_core.sources.load import load_source

#: How each consumer's command names the served model and the server it sends to.
MODEL_AND_SERVER = {
    "AIPerf": ("--model <MODEL>", "--url <URL>"),
    "vLLM": ("--model <MODEL>", "--base-url <URL>"),
    "SGLang": ("--model <MODEL>", "--base-url <URL>"),
    "GuideLLM": ("model=<MODEL>", "target=<URL>"),
    "inference-perf": ("model_name: <MODEL>", "base_url: <URL>"),
}


def test_every_format_prints_commands_that_run_as_shown_with_placeholders():
    d = Dashboard().open("compose").open("export")
    plan_columns = None
    checked = set()
    for fmt, info in FORMATS.items():
        d.at.selectbox(key="ex_format").select(fmt).run()
        d.check()
        if not info.usage:
            continue
        if plan_columns is None:
            spec = d.at.session_state["spec"]
            plan_columns = plan_workload(spec, pool=load_source(spec)).output_columns
        block = export_block_size(fmt, plan_columns)
        shown = [c.value for c in d.at.code]
        assert usage_hint(fmt, f"workload{info.extension}", block) in shown, fmt
        assert any(c.startswith(f"Replay (fill {', '.join(PLACEHOLDERS)}") for c in d.captions())
        for command in replay_commands(fmt, f"workload{info.extension}", block):
            needed = MODEL_AND_SERVER.get(command.consumer)
            if needed is None:  # simulators (Vidur, splitwise-sim, BLIS): no server to send to
                continue
            assert all(part in command.text for part in needed), (fmt, command.consumer, command.text)
            checked.add(command.consumer)
        if fmt == "mooncake":  # the command of the issue: AIPerf 0.13.0 needs --model to run
            aiperf = next(c.text for c in replay_commands(fmt, "workload.jsonl", block) if c.consumer == "AIPerf")
            assert "--endpoint-type chat" in aiperf and "--custom-dataset-type mooncake_trace --fixed-schedule" in aiperf
    assert checked == set(MODEL_AND_SERVER)  # every benchmark's command was read
