"""A dependency-free progress bar: running metrics, throughput and time left on one line.

On a terminal the line redraws in place about ten times a second; into a log file (nohup) it
prints a plain line every tenth of the way, so logs stay readable.
"""
import sys
import time


def format_duration(seconds):
    seconds = int(max(seconds, 0))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes:02d}:{seconds:02d}"


class ProgressBar:
    def __init__(self, total, description="", unit="img", stream=None, width=24):
        self.total, self.description, self.unit, self.width = total, description, unit, width
        self.stream = stream or sys.stderr
        self.interactive = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.done = 0
        self.start = time.perf_counter()
        self.last_draw = 0.0
        self.next_log_fraction = 0.1

    def update(self, count, **metrics):
        """Advance by ``count`` units; ``metrics`` (name -> value) are shown after the bar."""
        self.done += count
        now = time.perf_counter()
        fraction = self.done / self.total if self.total else 1.0
        if self.interactive:
            if now - self.last_draw >= 0.1 or self.done >= self.total:
                self.last_draw = now
                self._draw(now, metrics, end="\r")
        elif fraction >= self.next_log_fraction or self.done >= self.total:
            while self.next_log_fraction <= fraction:
                self.next_log_fraction += 0.1
            self._draw(now, metrics, end="\n")

    def _draw(self, now, metrics, end):
        elapsed = now - self.start
        rate = self.done / elapsed if elapsed > 0 else 0.0
        remaining = (self.total - self.done) / rate if rate > 0 else 0.0
        fraction = min(self.done / self.total, 1.0) if self.total else 1.0
        filled = int(round(fraction * self.width))
        bar = "#" * filled + "-" * (self.width - filled)
        shown = "  ".join(_format_metric(k, v) for k, v in metrics.items())
        line = (f"{self.description} [{bar}] {self.done}/{self.total}  {shown}  "
                f"{rate:,.0f} {self.unit}/s  ETA {format_duration(remaining)}")
        self.stream.write(line + end)
        self.stream.flush()

    def close(self):
        if self.interactive:
            self.stream.write("\n")
            self.stream.flush()


def _format_metric(name, value):
    if name.endswith("acc") or name.endswith("accuracy"):
        return f"{name} {100 * value:.2f}%"
    return f"{name} {value:.4f}" if isinstance(value, float) else f"{name} {value}"
