"""THE formatter of the dashboard: source times and clocks, durations, bin lengths, counts, changes, field labels and units.

Pure functions (no Streamlit, no Plotly): pages, charts and the sidebar all write numbers
through these, so a time or a bin length reads the same everywhere.
"""

from __future__ import annotations

import math

HOUR = 3600.0
DAY = 86400.0

FIELD_LABELS = {
    "input_tokens": "input tokens",
    "output_tokens": "output tokens",
    "text_tokens": "text tokens",
    "image_tokens": "image tokens",
    "audio_tokens": "audio tokens",
    "video_tokens": "video tokens",
    "image_count": "images per request",
    "audio_count": "audio clips per request",
    "video_count": "videos per request",
    "reason_ratio": "reason ratio",
    "reasoning_tokens": "reasoning tokens",
    "answer_tokens": "answer tokens",
}


def field_label(field: str) -> str:
    """How a per-request field reads on a chart: ``input_tokens`` -> ``input tokens``."""
    return FIELD_LABELS.get(field, field.replace("_", " "))


def field_unit(field: str) -> str:
    """The unit shown on an axis for ``field``."""
    if field.endswith("_tokens"):
        return "tokens"
    if field.endswith("_count"):
        return "items"
    return "share"


# -- times of day and source times -------------------------------------------------------------


def fmt_time(t_s: float) -> str:
    """Source time as ``day D HH:MM`` (day 1 is the first day), with seconds when not whole minutes."""
    day, clock = divmod(round(float(t_s)), 86400)
    return f"day {day + 1} {fmt_clock(clock)}"


def fmt_clock(seconds: float) -> str:
    """Seconds into a day as ``hh:mm`` (``hh:mm:ss`` when not whole minutes)."""
    s = round(float(seconds))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h:02d}:{m:02d}" + (f":{sec:02d}" if sec else "")


def parse_clock(text: str) -> int:
    """``hh:mm`` or ``hh:mm:ss`` (hours 0-23) as seconds into the day (the inverse of :func:`fmt_clock`); ``ValueError`` otherwise."""
    parts = text.strip().split(":")
    if len(parts) not in (2, 3) or not all(p.isdigit() for p in parts):
        msg = f"write the time as hh:mm (e.g. 18:15), got {text.strip()!r}"
        raise ValueError(msg)
    h, m = int(parts[0]), int(parts[1])
    s = int(parts[2]) if len(parts) == 3 else 0
    if not (0 <= h < 24 and 0 <= m < 60 and 0 <= s < 60):
        msg = f"hours 0-23, minutes and seconds 0-59, got {text.strip()!r}"
        raise ValueError(msg)
    return h * 3600 + m * 60 + s


def time_unit(span_s: float) -> tuple[str, float]:
    """Display unit of a time axis for a span and its length in seconds: hours from 3 h up, minutes from 3 min, else seconds."""
    if span_s >= 3 * HOUR:
        return "h", HOUR
    if span_s >= 180:
        return "min", 60.0
    return "s", 1.0


# -- durations and bin lengths -----------------------------------------------------------------


def fmt_duration(seconds: float) -> str:
    """A length of time with one decimal in the largest fitting unit: ``2.5 days`` (from 2 days), ``3.0 h``, ``12.5 min``, ``42.0 s``."""
    s = float(seconds)
    if s >= DAY * 2:
        return f"{s / DAY:.1f} days"
    if s >= HOUR:
        return f"{s / HOUR:.1f} h"
    if s >= 60:
        return f"{s / 60:.1f} min"
    return f"{s:.1f} s"


def _number(value: float) -> str:
    """A whole number without a decimal point, another as ``:g`` writes it."""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def fmt_resolution(seconds: float) -> str:
    """A bin length in whole hours or minutes where it is one: ``6 h``, ``10 min``, ``90 s``, ``1.5 s``."""
    s = float(seconds)
    if s >= HOUR and s % HOUR == 0:
        return f"{_number(s / HOUR)} h"
    if s >= 60 and s % 60 == 0:
        return f"{_number(s / 60)} min"
    return f"{_number(s)} s"


# -- counts and changes ------------------------------------------------------------------------


def fmt_count(n: float) -> str:
    """A count short enough for a metric tile, never cut: ``987,654``, ``12.35 M``, ``1.23 B``."""
    n = float(n)
    for scale, unit in ((1e12, "T"), (1e9, "B"), (1e6, "M")):
        if abs(n) >= scale:
            return f"{n / scale:,.2f} {unit}"
    return f"{n:,.0f}"


def fmt_signed_pct(value: float | None) -> str:
    """A change in percent as a bar label: ``+3 %``, ``−16 %`` (typographic minus); empty when null."""
    if value is None or not math.isfinite(value):
        return ""
    return f"{value:+.0f} %".replace("-", "\u2212")
