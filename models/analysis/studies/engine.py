"""The grid on Dask distributed: every unfinished cell a task, results written as they arrive.

    status = run_study(study_dir, plan, workers=2)                     # an embedded LocalCluster
    status = run_study(study_dir, plan, scheduler="tcp://host:8786")   # an existing cluster

``plan`` is a list of (cell, config) pairs.  Cells already done in the folder are skipped
(resume).  A cell that fails - its run raises, or the worker running it dies - is tried again up
to ``retries`` more times, then reported by name with its error, and the study ends with status
1; nothing is dropped silently.  Dask reschedules the tasks of a worker that disappears by
itself; after ``distributed.scheduler.allowed-failures`` such losses it raises ``KilledWorker``,
which counts as one failed attempt here.  Ctrl-C cancels the running cells, keeps every finished
one, and returns 130; the same command resumes.  Like the trainer, a study honours Ctrl-C even
when its process started with SIGINT ignored (``&`` in a script, a CI runner).  The cell is the unit of resumption: a cell
stopped or lost mid-run starts again from its first epoch (its run lives on the worker until it
is finished and sent back).

Dask is imported in this module only (the ``study`` extra), never by the trainer or the canvas.
"""
import logging
import signal
import sys
import time

from kit.progress import format_duration
from models.training.trainer import ctrl_c_handled
from nn.errors import UserError

from . import folder
from .cell import run_cell

EXIT_FAILED = 1
EXIT_INTERRUPTED = 130
STUDY_EXTRA = "pip install -e '.[study]'"


def import_distributed():
    try:
        import distributed
    except ImportError:
        raise UserError("studies run on Dask distributed, which is not installed; install the "
                        f"study extra: {STUDY_EXTRA}") from None
    return distributed


def connect(workers=None, scheduler=None):
    """(client, cluster or None): a client of the scheduler at ``scheduler``, or of a new
    LocalCluster of ``workers`` processes with one thread each."""
    distributed = import_distributed()
    if scheduler:
        try:
            return distributed.Client(scheduler, timeout="20s"), None
        except (OSError, TimeoutError) as error:
            raise UserError(f"--scheduler {scheduler}: cannot connect ({error})") from None
    # The worker processes start with Ctrl-C ignored (an ignored signal stays ignored in a child):
    # a terminal's Ctrl-C reaches the whole process group, and it is this process that stops the
    # study and closes the cluster; the workers would otherwise die printing tracebacks.
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        cluster = distributed.LocalCluster(
            n_workers=workers or 1, threads_per_worker=1, processes=True, dashboard_address=None,
            # no dashboard; the scheduler's small HTTP server on a free port, not 8787 (maybe taken)
            scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
            silence_logs=logging.CRITICAL)   # a task's error comes back as its result
    except (RuntimeError, OSError) as error:
        raise UserError(f"could not start a local Dask cluster of {workers or 1} worker(s): {error}") from None
    finally:
        signal.signal(signal.SIGINT, previous)
    return distributed.Client(cluster), cluster


class Progress:
    """Cells done / running / failed, and the time left, one line per event."""

    def __init__(self, total, skipped, stream=None):
        self.total, self.done, self.failed, self.running = total, skipped, 0, 0
        self.stream = stream or sys.stderr
        self.seconds = []   # wall time of the cells finished in this session
        self.started = time.perf_counter()

    def time_left(self):
        """The cells left times the wall time per cell finished so far in this session (which
        already counts the workers running side by side)."""
        remaining = self.total - self.done - self.failed
        if not self.seconds or remaining <= 0:
            return "unknown" if remaining > 0 else "00:00"
        per_cell = (time.perf_counter() - self.started) / len(self.seconds)
        return format_duration(per_cell * remaining)

    def line(self, event):
        print(f"[{self.done}/{self.total} done, {self.running} running, {self.failed} failed, "
              f"about {self.time_left()} left] {event}", file=self.stream, flush=True)


def running_tasks(client):
    """Cells being trained now: each worker runs as many as it has threads (the scheduler may
    have handed it one more, queued)."""
    try:
        threads = {address: info.get("nthreads", 1)
                   for address, info in client.scheduler_info().get("workers", {}).items()}
        return sum(min(len(keys), threads.get(address, 1))
                   for address, keys in client.processing().items())
    except Exception:   # a scheduler that is going away: the count is only for display
        return 0


def run_study(study, plan, workers=None, scheduler=None, data=None, retries=2, on_event=None,
              stream=None, threads=1):
    """Run every unfinished cell of ``plan`` into the folder ``study``; returns the exit status
    (0: every cell done; 1: some failed after all retries; 130: interrupted).

    ``on_event(kind, cell)`` is called after each ``done`` or ``failed`` attempt (tests use it
    to interrupt a study or kill a worker at a known point); ``threads``: each run's CPU threads."""
    with ctrl_c_handled():
        return _run_study(study, plan, workers, scheduler, data, retries, on_event,
                          stream or sys.stderr, threads)


def _run_study(study, plan, workers, scheduler, data, retries, on_event, stream, threads):
    todo = [(cell, config) for cell, config in plan if not folder.finished(study, cell, config)]
    progress = Progress(len(plan), len(plan) - len(todo), stream)
    if not todo:
        print(f"{study}: all {len(plan)} cells are done already", file=stream)
        return 0
    print(f"{study}: {len(todo)} of {len(plan)} cells to run"
          + (f" ({len(plan) - len(todo)} done already)" if len(todo) < len(plan) else ""), file=stream)
    distributed = import_distributed()
    client, cluster = connect(workers, scheduler)
    attempts = {cell: 0 for cell, _ in todo}
    configs = dict(todo)
    errors = {}
    futures = {}
    try:
        def submit(cell):
            attempts[cell] += 1
            future = client.submit(run_cell, cell, configs[cell], data, threads, pure=False,
                                   key=f"{cell.name}-attempt{attempts[cell]}")
            futures[future] = cell
            return future

        pending = distributed.as_completed([submit(cell) for cell, _ in todo])
        workers_now = len(client.scheduler_info().get("workers", {}))
        progress.running = running_tasks(client)
        progress.line(f"started on {workers_now} worker(s) at {client.scheduler.address}")
        for future in pending:
            cell = futures.pop(future)
            try:
                payload = future.result()
            except Exception as error:   # the run raised, or Dask gave up on a lost worker
                message = str(error) if isinstance(error, RuntimeError) and str(error) else \
                    f"{cell.name}: {type(error).__name__}: {error}"
                errors[cell] = message
                folder.write_failure(study, cell, message)
                if attempts[cell] <= retries:
                    pending.add(submit(cell))
                    event = f"{cell.name} failed (attempt {attempts[cell] - 1} of {retries + 1}), retrying: {message}"
                else:
                    progress.failed += 1
                    event = f"{cell.name} FAILED after {attempts[cell]} attempts: {message}"
                progress.running = running_tasks(client)
                progress.line(event)
                if on_event is not None:
                    on_event("failed", cell)
                continue
            try:
                folder.write_cell(study, cell, payload)
            except OSError as error:   # a full disk, a folder gone read-only: stop, keep what is whole
                client.cancel(list(futures))
                raise UserError(f"cannot write the cell {cell.name} into {study}: "
                                f"{error.strerror or error}; the finished cells are kept, and the "
                                "same command runs the rest") from None
            errors.pop(cell, None)
            progress.done += 1
            progress.seconds.append(payload["result"]["seconds"])
            progress.running = running_tasks(client)
            progress.line(f"{cell.name}: test accuracy {100 * payload['result']['test_accuracy']:.2f} % "
                          f"in {format_duration(payload['result']['seconds'])}")
            if on_event is not None:
                on_event("done", cell)
    except KeyboardInterrupt:
        client.cancel(list(futures))
        print(f"interrupted: {progress.done} of {len(plan)} cells are done and kept in {study}; "
              "the same command runs the rest", file=stream)
        return EXIT_INTERRUPTED
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    if errors:
        print(f"{len(errors)} of {len(plan)} cells failed after {retries + 1} attempts each "
              f"(errors in {study}/<cell>/error.txt); the same command retries them:", file=stream)
        for message in errors.values():
            print(f"  {message}", file=stream)
        return EXIT_FAILED
    print(f"all {len(plan)} cells done in {study}", file=stream)
    return 0
