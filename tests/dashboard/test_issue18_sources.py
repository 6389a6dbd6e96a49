"""Issue 18, points 1 and 2: nothing crashes and nothing silently carries over when the source changes.

Expected values come from the core on the same data (the client ranking, the plan), never from the page.
"""

from __future__ import annotations

from _dash import Dashboard, plain

from servegen_core.characterize.rates import client_shares
from servegen_core.paths import demo_data_dir
from servegen_core.sources.pool import load_pool
from servegen_core.spec import ConstantRate, ObservedRate, RampRate


def clients_table(d: Dashboard):
    return next(f for f in d.at.dataframe if f.key and f.key.startswith("cl_table_")).value


def test_an_empty_filter_result_is_an_empty_table_and_a_sentence():
    """Point 1: "requests >= 10000000" matches nobody: no SchemaError, an empty table, a sentence."""
    d = Dashboard().open("clients")
    d.at.multiselect(key="cl_filter_columns").set_value(["requests"]).run()
    d.at.number_input(key="cl_lo_requests").set_value(10_000_000).run()
    d.check()
    assert clients_table(d).shape[0] == 0
    assert any("matches the filter" in i and "requests ≥ 1e+07" in i for i in d.infos()), d.infos()
    assert not [b for b in d.at.button if b.key == "cl_use_filtered" and not b.disabled]
    # the charts beside it are still drawn
    assert {k for k in d.figures() if k.startswith("cl_top_")}


def test_a_filter_set_on_another_source_is_an_empty_result_there_not_a_crash():
    """Point 1: the filter is kept on a source switch; on the new source it matches nobody and the page says so."""
    d = Dashboard().open("clients")
    d.at.multiselect(key="cl_filter_columns").set_value(["requests"]).run()
    d.at.number_input(key="cl_lo_requests").set_value(10_000_000).run()
    d.demo("traces/demo_requests.csv").open("clients")
    d.check()
    assert clients_table(d).shape[0] == 0
    assert any("matches the filter" in i for i in d.infos())
    # widening the bound shows every client of this source again
    d.at.number_input(key="cl_lo_requests").set_value(0).run()
    d.check()
    assert clients_table(d).shape[0] == d.at.session_state["view"].client_ids.__len__()


def test_settings_from_another_source_are_shown_as_kept_and_reset_in_one_click():
    """Point 2: a ramp set on the demo is named as kept on m-large, "Spec ready" is withheld, one click resets it."""
    d = Dashboard().open("compose")
    d.at.selectbox(key="cmp_rate_kind").select("ramp").run()
    d.at.number_input(key="cmp_ramp_start").set_value(5.0).run()
    d.at.number_input(key="cmp_ramp_end").set_value(50.0).run()
    d.check()
    assert d.at.session_state["spec"].rate == RampRate(start_rps=5.0, end_rps=50.0)
    assert any(plain(s.value).startswith("Spec ready") for s in d.at.success)  # the demo's own ramp: no carried settings
    d.servegen("language/m-large").open("compose")
    d.check()
    kept = [plain(w.value) for w in d.at.warning if plain(w.value).startswith("Kept from another source")]
    assert kept and "rate kind ramp" in kept[0] and "ramp end (req/s) 50" in kept[0], kept
    assert "req/s on average over the span" in kept[0]
    assert not any(plain(s.value).startswith("Spec ready") for s in d.at.success)
    assert any(plain(w.value).startswith("Spec built, not ready") and "kept from another source" in plain(w.value) for w in d.at.warning)
    d.at.button(key="cmp_reset_carried").click().run()
    d.check()
    assert not any(plain(w.value).startswith("Kept from another source") for w in d.at.warning)
    assert d.at.session_state["spec"].rate == ObservedRate(factor=1.0)
    assert d.at.selectbox(key="cmp_rate_kind").value == "observed"


def test_keeping_settings_for_the_new_source_is_one_click_too():
    d = Dashboard().open("compose")
    d.at.selectbox(key="cmp_rate_kind").select("constant").run()
    d.at.number_input(key="cmp_rps").set_value(2.0).run()
    d.demo("traces/demo_requests.csv").open("compose")
    assert any(plain(w.value).startswith("Kept from another source") and "rate (req/s) 2" in plain(w.value) for w in d.at.warning)
    d.at.button(key="cmp_keep_carried").click().run()
    d.check()
    assert not any(plain(w.value).startswith("Kept from another source") for w in d.at.warning)
    assert d.at.session_state["spec"].rate == ConstantRate(rps=2.0)


def test_pick_clients_starts_with_the_busiest_clients():
    """Point 2: "Pick clients" starts from the three busiest clients of the source, not its first ids."""
    d = Dashboard().open("compose")
    d.at.radio(key="cmp_mode").set_value("ids").run()
    d.check()
    pool = load_pool(demo_data_dir() / "servegen", "language/demo-chat")
    busiest = client_shares(pool).frame["client_id"].head(3).to_list()
    assert busiest != list(pool.client_ids[:3])  # the test can tell the two apart
    ids_key = next(m.key for m in d.at.multiselect if m.key and m.key.startswith("cmp_ids_"))
    assert d.at.multiselect(key=ids_key).value == busiest
    assert list(d.at.session_state["spec"].clients.ids) == busiest
