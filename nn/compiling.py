"""Knowing when Numba compiles: a cold cache told from a warm one, and one line said about it.

The first call of a kernel for a new argument type either loads its machine code from Numba's
on-disk cache (milliseconds) or compiles it (a second or more each on a 2-core machine).  Numba
announces only the second: its ``numba:compile`` event fires after the cache was tried and
missed.  Listening for that event tells exactly, and for free, whether anything is compiled:

    with cached_only():                  # KernelsNotCached at the first kernel the cache lacks
        model.predict_proba(images)      # (what was cached is loaded; nothing is compiled)

    with compile_notice("compiling kernels for this machine, first run only: ~8 s") as notice:
        warm_up()                        # the line is printed once, when the first compile starts
    notice.compiled, notice.seconds      # how many kernels were compiled, and the time they took

Numba compiles one function at a time in a process (a global compiler lock: two threads
compiling take as long as one doing both), so compiling in parallel takes processes
(:mod:`canvas.startup`).
"""
import math
import os
import sys
import threading
import time
from contextlib import contextmanager

from numba.core import event

COMPILE_EVENT = "numba:compile"


class KernelsNotCached(Exception):
    """Raised inside :func:`cached_only` instead of compiling a kernel Numba's cache lacks."""


class _CompileListener(event.Listener):
    """Calls ``on_first_start(dispatcher)`` when an outermost compile starts (a kernel compiled
    from inside another kernel's compilation is part of that one), and counts them."""

    def __init__(self, on_start=None):
        self.on_start_callback = on_start
        self.depth = 0
        self.compiled = 0
        self.seconds = 0.0
        self.names = []
        self._started = 0.0
        self._thread = threading.get_ident()

    def on_start(self, data):
        if threading.get_ident() != self._thread:   # another thread's compile is not ours to judge
            return
        self.depth += 1
        if self.depth == 1:
            self._started = time.perf_counter()
            dispatcher = data.data["dispatcher"]
            self.names.append(getattr(dispatcher, "__qualname__", str(dispatcher)))
            if self.on_start_callback is not None:
                self.on_start_callback(dispatcher)

    def on_end(self, data):
        if threading.get_ident() != self._thread:
            return
        self.depth -= 1
        if self.depth == 0:
            self.compiled += 1
            self.seconds += time.perf_counter() - self._started


@contextmanager
def _listening(listener):
    event.register(COMPILE_EVENT, listener)
    try:
        yield listener
    finally:
        event.unregister(COMPILE_EVENT, listener)


@contextmanager
def cached_only():
    """Run kernels only as far as Numba's cache has them: the first one that would be compiled
    raises :class:`KernelsNotCached` (naming it) instead, before any compiling starts."""
    def refuse(dispatcher):
        raise KernelsNotCached(getattr(dispatcher, "__qualname__", str(dispatcher)))
    with _listening(_CompileListener(refuse)):
        yield


class CompileNotice:
    """What :func:`compile_notice` saw: ``compiled`` kernels in ``seconds`` (wall clock),
    their ``names``, and whether the line was ``printed``."""

    def __init__(self, listener, printed):
        self._listener, self._printed = listener, printed

    compiled = property(lambda self: self._listener.compiled)
    seconds = property(lambda self: self._listener.seconds)
    names = property(lambda self: list(self._listener.names))
    printed = property(lambda self: bool(self._printed))


@contextmanager
def compile_notice(line, stream=None):
    """Print ``line`` (a str, or a function returning one) once, when the first kernel starts
    compiling inside the block; nothing at all when every kernel comes from the cache.

    ``stream``: where to print (default: standard error, read at print time).  Yields a
    :class:`CompileNotice`.
    """
    printed = []

    def announce(dispatcher):
        if not printed:
            text = line() if callable(line) else line
            print(text, file=stream or sys.stderr, flush=True)
            printed.append(text)

    listener = _CompileListener(announce)
    with _listening(listener):
        yield CompileNotice(listener, printed)


# ----------------------------------------------------------------------------- how long, how many
def load_average():
    """The system's load average over the last minute, or None where it does not tell."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):          # Windows
        return None


def usable_cores():
    """The CPUs this process may run on."""
    return len(_usable_cpu_numbers() or ()) or max(1, os.cpu_count() or 1)


def _usable_cpu_numbers():
    """The numbers of the CPUs this process may run on; None where that is not told."""
    try:
        return set(os.sched_getaffinity(0))
    except AttributeError:                          # macOS, Windows
        return None


PROC_STAT = "/proc/stat"
SAMPLE_SECONDS = 0.1


def _cpu_times():
    """{CPU number: (busy, all) CPU time since boot, in jiffies} from Linux's /proc/stat; None
    where it cannot be read."""
    times = {}
    try:
        with open(PROC_STAT) as stat:
            for line in stat:
                name, *values = line.split()
                if name.startswith("cpu") and name[3:].isdigit():
                    # user nice system idle iowait irq softirq steal (guest time is in user)
                    ticks = [int(value) for value in values[:8]]
                    times[int(name[3:])] = (sum(ticks) - ticks[3] - ticks[4], sum(ticks))
    except (OSError, ValueError, IndexError):
        return None
    return times or None


def busy_cores():
    """How many of this process's cores others keep busy now: the CPU time they used over
    SAMPLE_SECONDS (Linux); the load average where that cannot be read.  None where neither
    tells (Windows).

    The one-minute load average alone lags: right after a long job it still says 2.5 on idle
    cores, and the estimate came out 2.5 - 3x too long.  It also counts the whole machine, where
    a container or a shared server lets this process run on a few of its cores.  When every
    core is busy the sample cannot tell 2 busy from 6 wanting a core, so then (if the sample
    covers the whole machine) the larger of the two counts."""
    before = _cpu_times()
    if before is None:
        return load_average()
    time.sleep(SAMPLE_SECONDS)
    after = _cpu_times()
    if after is None:
        return load_average()
    sampled = set(before) & set(after)
    mine = sampled & (_usable_cpu_numbers() or sampled) or sampled
    busy = sum((after[cpu][0] - before[cpu][0]) / max(1, after[cpu][1] - before[cpu][1])
               for cpu in mine)
    load = load_average()
    if load is not None and len(mine) == len(after) and busy > len(mine) - 0.5:
        return max(busy, load)
    return busy


def idle_cores(busy=None):
    """The cores nobody else is using (at least one): how many processes to compile in.  On a
    busy machine more would gain nothing (Linux shares the CPU between sessions, not
    processes) while each pays for its own start and Numba's own helpers again.  ``busy``: what
    :func:`busy_cores` said (measured now if None)."""
    cores = usable_cores()
    busy = busy_cores() if busy is None else busy
    return cores if busy is None else max(1, min(cores, round(cores - busy)))


def estimate_seconds(quiet_seconds, processes=1, busy=None):
    """``quiet_seconds`` of compiling (what it takes on a quiet machine) scaled by how busy
    this one is - the busy cores (:func:`busy_cores`, measured now if ``busy`` is None) over
    the cores, our own ``processes`` added - rounded up."""
    busy = busy_cores() if busy is None else busy
    slowdown = 1.0 if busy is None else max(1.0, (busy + processes) / usable_cores())
    return max(1, math.ceil(quiet_seconds * slowdown))
