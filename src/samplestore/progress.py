"""A small progress bar for long work run from the command line (stderr; redrawn in place on a terminal)."""

from __future__ import annotations

import sys
import time

__all__ = ["Progress"]


class Progress:
    """Counts work done toward an optional total and shows rate and share done.

    On a terminal it redraws one line at most 10 times a second; otherwise (logs, CI) it
    prints a line every 5 seconds. ``close()`` prints the final line.
    """

    def __init__(self, desc: str, total: float | None = None, unit: str = "", scale: float = 1.0,
                 enabled: bool = True) -> None:
        self.desc, self.total, self.unit, self.scale = desc, total, unit, scale
        self.done = 0.0
        self.extra = ""
        self.enabled = enabled
        self._tty = sys.stderr.isatty()
        self._start = self._last = time.monotonic()

    def update(self, n: float) -> None:
        self.done += n
        now = time.monotonic()
        if self.enabled and now - self._last >= (0.1 if self._tty else 5.0):
            self._last = now
            self._draw(final=False)

    def _draw(self, final: bool) -> None:
        el = max(time.monotonic() - self._start, 1e-9)
        done = self.done / self.scale
        rate = done / el
        digits = 1 if self.scale != 1 else 0  # whole counts print without decimals
        if self.total:
            frac = min(1.0, self.done / self.total)
            bar = "#" * int(frac * 30)
            text = (f"{self.desc} [{bar:<30}] {frac * 100:5.1f}% {done:,.{digits}f}{self.unit} "
                    f"{rate:,.{digits}f}{self.unit}/s {el:.1f}s")
        else:
            text = f"{self.desc} {done:,.0f}{self.unit} {rate:,.0f}{self.unit}/s {el:.1f}s"
        if self.extra:
            text += f" {self.extra}"
        if self._tty:
            sys.stderr.write("\r" + text + ("\n" if final else ""))
        else:
            sys.stderr.write(text + "\n")
        sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            self._draw(final=True)
