"""Is there a display to open a window on?  Asked before SDL is, because SDL does not say.

With ``DISPLAY`` set but no X server behind it, SDL (as pygame ships it) quietly falls back to an
offscreen window and the app waits forever for events that never come.  :func:`display_problem`
answers the question the way an X client would: ``DISPLAY`` is ``[host]:n[.screen]`` (on Linux
anything else, e.g. ``localhost``, is refused as an X client would refuse it); with no
host (or ``unix``) the server listens on the Unix socket ``/tmp/.X11-unix/X<n>`` (on Linux also
the abstract socket of that name), otherwise on TCP port 6000 + n of the host.  A connection that
opens within a short timeout means a server is there; nothing more is exchanged.
"""
import os
import re
import socket
import sys
import threading

HEADLESS_DRIVERS = ("dummy", "offscreen")
_DISPLAY = re.compile(r"^(?P<host>[^:]*):(?P<number>\d+)(\.\d+)?$")


def _connects(family, address, timeout):
    try:
        with socket.socket(family, socket.SOCK_STREAM) as connection:
            connection.settimeout(timeout)
            connection.connect(address)
        return True
    except OSError:
        return False


def is_display_name(display):
    """True if ``display`` has an X display name's form, ``[host]:n[.screen]`` (e.g. ':0',
    'host:1.0', or an XQuartz socket path ending in ':0').  'localhost' or '!!garbage' is not:
    no X client can connect to it, and SDL would quietly fall back to an invisible window."""
    return _DISPLAY.match(display.strip()) is not None


def x_server_answers(display, timeout=1.0):
    """True if an X server accepts a connection for ``display`` (e.g. ':0', 'host:1.0').

    A value that is not ``[host]:n[.screen]`` is given the benefit of the doubt here (True);
    :func:`display_problem` refuses it on Linux.  A host that is a path (XQuartz's launchd
    socket on macOS) is connected to as a Unix socket.
    """
    match = _DISPLAY.match(display.strip())
    if match is None:
        return True
    host, number = match.group("host"), int(match.group("number"))
    if host.startswith("/") and hasattr(socket, "AF_UNIX"):
        return _connects(socket.AF_UNIX, display.strip(), timeout)
    if host in ("", "unix"):
        path = f"/tmp/.X11-unix/X{number}"
        if hasattr(socket, "AF_UNIX"):
            if _connects(socket.AF_UNIX, path, timeout):
                return True
            if sys.platform.startswith("linux") and _connects(socket.AF_UNIX, "\0" + path, timeout):
                return True
        if host == "unix":
            return False
        host = "localhost"
    return _connects(socket.AF_INET, (host, 6000 + number), timeout)


def display_problem(environ=None, timeout=1.0):
    """Why no window can be opened, as a short phrase, or None when one (probably) can.

    Only X11 is checked: with SDL_VIDEODRIVER set to a headless driver, with WAYLAND_DISPLAY,
    or off Linux/BSD, the answer is None and SDL decides.
    """
    environ = os.environ if environ is None else environ
    driver = environ.get("SDL_VIDEODRIVER", "")
    if driver in HEADLESS_DRIVERS or environ.get("WAYLAND_DISPLAY"):
        return None
    display = environ.get("DISPLAY")
    if not display or driver not in ("", "x11"):
        return None
    if not is_display_name(display) and sys.platform.startswith("linux"):
        return f"DISPLAY={display} is not an X display name such as :0 or host:0"
    if not answers_in_time(display, timeout):
        return f"DISPLAY={display} but no X server answers there"
    return None


def answers_in_time(display, timeout):
    """:func:`x_server_answers`, given at most a few ``timeout``s in all: a socket's timeout does
    not cover looking up a host's name, which can hang.  A check still running then is a no."""
    answer = []
    worker = threading.Thread(target=lambda: answer.append(x_server_answers(display, timeout)),
                              daemon=True)     # left behind if it hangs: the program exits anyway
    worker.start()
    worker.join(3 * timeout)
    return bool(answer and answer[0])
