"""The Provisioning page's SLO-class section: replicas at which every class of a spec meets its own objective."""

from __future__ import annotations

import streamlit as st

import core_calls
from plaintext import md
from servegen_core.serve.by_class import classes_of_spec, min_replicas_by_class


def slo_class_section(
    spec, pool, cost, *, config, router: str, max_replicas: int, sessions: str, params: tuple, n_requests: int,
    span_s: float, count_text: str,
) -> None:
    """Explain the ``slo_classes`` section, or search the replicas per class and show the stored answer for these inputs."""
    st.subheader("SLO classes")
    if spec.slo_classes is None:
        st.caption(
            "A spec with an slo_classes section gives its clients latency classes and priorities (e.g. interactive: "
            "p99 TTFT 1 s and TPOT 50 ms, priority 0; batch: p99 end-to-end 1 h, priority 1); the simulator then serves "
            "waiting requests by priority and this section answers per class. Add the section to the spec JSON."
        )
        return
    objectives = classes_of_spec(spec)
    st.caption(
        "Replicas at which every class meets its own objective (and so does every larger count tried), waiting "
        "requests served lowest priority first: "
        + "; ".join(f"{name} (priority {spec.slo_classes.of(name).priority}): {o.describe()}" for name, o in objectives.items())
    )
    class_params = (*params, "classes")
    if st.button("Simulate by class", key="prov_class_run"):
        class_bytes = core_calls.whatif_bytes(n_requests, workloads=1, replicas=max_replicas, span_s=span_s, composed=True)
        made = core_calls.workload(spec, pool)  # composed (and cached) within its own budget
        if made is None:
            return
        with st.spinner("Searching the replicas every class needs…"):
            try:
                with core_calls.within_budget(class_bytes, f"simulating {count_text} by class"):
                    by_class = min_replicas_by_class(
                        made.trace, objectives, cost, config=config, router=router, max_replicas=max_replicas, sessions=sessions,
                    )
            except Exception as exc:  # noqa: BLE001 - a core error becomes a message on the page
                core_calls.show_error(exc)
                return
        st.session_state["prov_classes"] = (class_params, by_class)
    stored = st.session_state.get("prov_classes")
    if stored is not None and stored[0] == class_params:
        by_class = stored[1]
        (st.success if by_class.replicas is not None else st.warning)(md(by_class.sentence()))
        st.dataframe(by_class.by_class, hide_index=True, key="prov_class_table")
