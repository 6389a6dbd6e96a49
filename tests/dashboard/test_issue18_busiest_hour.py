"""Issue 18, "also wanted": Compose's busiest-hour span picker, from the core's rate series."""

from __future__ import annotations

from _dash import Dashboard, plain

from servegen_core.characterize import rates
from servegen_core.paths import demo_data_dir
from servegen_core.sources.pool import load_pool


def test_the_busiest_hour_button_sets_the_span_to_the_core_s_busiest_hour():
    d = Dashboard().open("compose")
    pool = load_pool(demo_data_dir() / "servegen", "language/demo-chat")
    busiest = rates.busiest_window(pool, window_s=3600)
    assert busiest.ok
    sid = next(k for k in d.at.session_state if isinstance(k, str) and k.startswith("cmp_day_"))[len("cmp_day_"):]
    start_before = (d.at.number_input(key=f"cmp_day_{sid}").value - 1) * 86400
    assert busiest.start_s != start_before  # the default span (the source's start) is not the busiest hour
    caption = next(plain(c) for c in d.captions() if "Busiest hour of the source" in c)
    assert f"{busiest.rate_rps:,.2f} req/s" in caption
    d.at.button(key="cmp_busiest_hour").click().run()
    d.check()
    spec = d.at.session_state["spec"]
    assert spec.span.start_s == busiest.start_s and spec.span.duration_s == 3600.0
    assert d.at.button(key="cmp_busiest_hour").disabled
    assert any("(the span now)" in c for c in d.captions())
    # the plan of that span expects the busiest hour's requests (observed rate, factor 1)
    plan_rate = float(plain(next(m.value for m in d.at.metric if m.label == "Mean rate (req/s)")).replace(",", ""))
    assert abs(plan_rate - busiest.rate_rps) < 0.01 * busiest.rate_rps + 0.01
