"""Progress lines: live on a terminal, a log line every 10 % or 30 s elsewhere, no glue."""

from __future__ import annotations

import io

from bayesoof.inference import progress
from bayesoof.inference.progress import Progress, Spinner


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_log_mode_a_line_every_tenth_and_final():
    out, clock = io.StringIO(), Clock()
    p = Progress("emcee", 1000, stream=out, live=False, clock=clock)
    for i in range(1, 1001):
        clock.t += 0.01  # fast: only the 10 % steps produce lines
        p.update(i, "sampling")
    p.close()
    lines = out.getvalue().splitlines()
    assert len(lines) == 10, lines  # 10 %, 20 %, ..., 100 %; close adds nothing more
    assert lines[0].startswith("emcee: 100/1000 iterations (10 %), sampling")
    assert lines[-1].startswith("emcee: 1000/1000 iterations (100 %)")


def test_log_mode_a_line_at_least_every_30_s():
    out, clock = io.StringIO(), Clock()
    p = Progress("nuts", 10000, stream=out, live=False, clock=clock)
    for i in range(1, 101):  # 1 % done after 100 updates of 1 s each: no 10 % step
        clock.t += 1.0
        p.update(i)
    assert len(out.getvalue().splitlines()) == 3  # at 30, 60 and 90 s
    p.close("interrupted")
    last = out.getvalue().splitlines()[-1]
    assert "100/10000" in last and "interrupted" in last


def test_live_mode_rewrites_one_line_and_ends_it():
    out, clock = io.StringIO(), Clock()
    p = Progress("nuts", 100, stream=out, live=True, clock=clock)
    for i in range(1, 101):
        clock.t += 0.1
        p.update(i)
    p.close()
    text = out.getvalue()
    assert text.count("\n") == 1 and text.endswith("\n")  # ended: the next line won't glue
    assert text.count("\r") > 10
    assert "100/100 iterations (100 %)" in text.splitlines()[-1].split("\r")[-1]


def test_spinner_keeps_other_lines_apart():
    class Tty(io.StringIO):
        def isatty(self):
            return True

    tty = Tty()
    with Spinner("fit", stream=tty) as sp:
        sp._shown = "fit | 3 s"  # as if drawn
        tty.write(sp._shown)
        print("order 1: chi2 = 3", file=sp.lines)
    text = tty.getvalue()
    # the live line is cleared before the printed line: the line starts afresh
    assert "\rorder 1: chi2 = 3\n" in text.replace(" " * 9 + "\r", "")
    assert text.endswith("\n") or text.endswith("\r")


def test_api_progress_off_in_scripts_on_in_notebooks(monkeypatch):
    assert progress.wanted(None) is False  # a script (pytest)
    assert progress.wanted(True) is True and progress.wanted(False) is False
    monkeypatch.setattr(progress, "in_notebook", lambda: True)
    assert progress.wanted(None) is True
