"""One trainer per output: a lock file beside the weights (``m.npz`` -> ``m.lock``) holding the
pid of the process that writes them, so a second trainer started on the same ``--out`` is
refused in one line instead of both reporting "written to m.npz" while one result is lost.

    with OutputLock(out):      # UserError if another live trainer holds it
        ...train...

Where ``fcntl`` exists (Linux, macOS) the lock is an ``flock`` on the file: the kernel lets go
when the holder dies, so a lock left by a killed trainer is simply taken over.  Elsewhere the
file is created exclusively and a lock naming a pid that no longer runs is taken over.
"""
import os
from pathlib import Path

from nn.errors import UserError

try:
    import fcntl
except ImportError:  # Windows: exclusive creation and a pid check instead
    fcntl = None


def lock_path(out):
    """The lock file beside the weights file ``out``."""
    out = Path(out)
    stem = out.name[:-4] if out.name.endswith(".npz") else out.name
    return out.with_name(stem + ".lock")


def _pid_alive(pid):
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: it runs, as another user
        return True
    return True


def _holder(path):
    try:
        return int(Path(path).read_text().strip() or 0)
    except (OSError, ValueError):
        return 0


class OutputLock:
    """Held from before the first file is written to the end of the run; removed on release."""

    def __init__(self, out):
        self.out = Path(out)
        self.path = lock_path(out)
        self.descriptor = None
        self.created = []  # folders made for the lock, removed again if the run leaves them empty

    def _refuse(self, pid):
        who = f"another trainer (pid {pid})" if pid else "another trainer"
        raise UserError(f"--out {self.out}: {who} is writing it now ({self.path}); wait for it "
                        "to finish or choose another --out")

    def acquire(self):
        missing = [folder for folder in (self.path.parent, *self.path.parent.parents) if not folder.exists()]
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.created = missing
            return self._acquire()
        except OSError as error:
            raise UserError(f"cannot write the lock file {self.path}: {error.strerror or error}") from None

    def _acquire(self):
        for _ in range(10):  # a holder releasing meanwhile removes the file: open again
            if fcntl is not None:
                descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
                try:
                    fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    os.close(descriptor)
                    self._refuse(_holder(self.path))
                try:  # locked, but is it still the file at that path (not one just removed)?
                    same = os.path.samestat(os.fstat(descriptor), os.stat(self.path))
                except FileNotFoundError:
                    same = False
                if not same:
                    os.close(descriptor)
                    continue
            else:
                try:
                    descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
                except FileExistsError:
                    pid = _holder(self.path)
                    if _pid_alive(pid) and pid != os.getpid():
                        self._refuse(pid)
                    self.path.unlink(missing_ok=True)  # a dead trainer's lock: take it over
                    continue
            os.ftruncate(descriptor, 0)
            os.write(descriptor, f"{os.getpid()}\n".encode())
            self.descriptor = descriptor
            return self
        self._refuse(_holder(self.path))

    def release(self):
        if self.descriptor is None:
            return
        self.path.unlink(missing_ok=True)  # removed while still locked, so no one locks a dead file
        os.close(self.descriptor)
        self.descriptor = None
        for folder in self.created:  # innermost first; one holding anything stays
            try:
                folder.rmdir()
            except OSError:
                break

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()
