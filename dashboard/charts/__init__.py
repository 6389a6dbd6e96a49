"""Pure chart functions by page family: a result frame in, a Plotly figure out (no Streamlit, no statistics).

``common`` holds what every chart shares (template, palette, time axes, layout); the other
modules hold one page family each. The names pages draw with are re-exported here, so a page
writes ``charts.rate_over_time(...)``.
"""

from charts.arrivals import OBSERVED_GAPS, SAMPLED_GAPS, cv_cdf, cv_vs_rate, interarrival_histogram, pattern_shares
from charts.common import COLORS, OTHER_COLOR, TEMPLATE, empty_figure
from charts.compare import achieved_vs_target, cdf_comparison, cv_scatter, rate_plan, weight_shares
from charts.lengths import client_means, length_distribution, length_scatter, percentile_bands
from charts.modality import MODALITY_COLORS, count_distribution, modality_over_time, modality_share_histogram, tokens_per_item
from charts.prefix import (
    client_reuse,
    context_growth,
    inter_turn_gaps,
    lru_comparison,
    lru_hit_ratio_curve,
    prefix_depth_histogram,
    session_turns,
    top_prefixes,
)
from charts.rates import (
    client_activity,
    day_over_day,
    hour_day_heatmap,
    lorenz_curve,
    rate_over_time,
    selected_clients,
    stacked_rate,
    top_clients,
)
from charts.reasoning import bimodality_by_client, reason_ratio_histogram, reasoning_vs_answer
from charts.serving import LATENCY_LABELS, fleet_timeline, provisioning_curves

__all__ = [
    "COLORS", "LATENCY_LABELS", "MODALITY_COLORS", "OBSERVED_GAPS", "OTHER_COLOR", "SAMPLED_GAPS", "TEMPLATE",
    "achieved_vs_target", "bimodality_by_client", "cdf_comparison", "client_activity", "client_means", "client_reuse",
    "context_growth", "count_distribution", "cv_cdf", "cv_scatter", "cv_vs_rate", "day_over_day", "empty_figure",
    "fleet_timeline", "hour_day_heatmap", "inter_turn_gaps", "interarrival_histogram", "length_distribution",
    "length_scatter", "lorenz_curve", "lru_comparison", "lru_hit_ratio_curve", "modality_over_time", "modality_share_histogram",
    "pattern_shares", "percentile_bands", "prefix_depth_histogram", "provisioning_curves", "rate_over_time", "rate_plan",
    "reason_ratio_histogram", "reasoning_vs_answer", "selected_clients", "session_turns", "stacked_rate",
    "tokens_per_item", "top_clients", "top_prefixes", "weight_shares",
]
