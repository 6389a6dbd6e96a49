"""Tests for servegen_core.cli.output: the progress bar."""

from __future__ import annotations

import io

from servegen_core.cli.output import ProgressBar


def test_progress_bar_redraws_on_a_terminal_and_steps_in_a_log():
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    tty = Tty()
    bar = ProgressBar(4, stream=tty, label="generating", width=8)
    for i in range(1, 5):
        bar.update(i, f"{i * 10} requests")
    bar.close()
    text = tty.getvalue()
    assert text.count("\r") == 4 and text.endswith("\n") and text.count("\n") == 1
    assert "\rgenerating [##------]  25.0% 1/4 10 requests" in text
    assert "\rgenerating [########] 100.0% 4/4 40 requests\n" in text

    log = io.StringIO()
    bar = ProgressBar(100, stream=log, label="g", width=10)
    for i in range(1, 101):
        bar.update(i)
    bar.close()
    lines = log.getvalue().splitlines()
    # one line per tenth of the work (the first update opens the 0-10 % step), no carriage returns
    assert len(lines) == 11 and "\r" not in log.getvalue()
    assert lines[-1] == "g [##########] 100.0% 100/100"
