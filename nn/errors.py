"""The one exception type that user-facing commands turn into a one-line message.

Anything a person can get wrong - a malformed data file, a tampered weights file, a bad flag -
raises :class:`UserError` (or a subclass) with a message that names the file or flag and says
what is wrong.  Command-line entry points catch it with :func:`exit_on_user_error`, print
``error: <message>`` on one line and exit with status 2; everything else is a bug and keeps its
traceback.
"""
import functools
import os
import sys


class UserError(Exception):
    """A problem with the user's input, reported as one line, never as a traceback."""


class DataError(UserError):
    """A data file (IDX) is missing, truncated or malformed, or images and labels disagree."""


class WeightsError(UserError):
    """A weights file is missing, not a weights file, tampered with or of another model."""


def exit_on_user_error(main):
    """Decorate a ``main()`` so a :class:`UserError` becomes ``error: ...`` and exit status 2."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except UserError as error:
            print(f"error: {error}", file=sys.stderr)
            raise SystemExit(2) from None
        except BrokenPipeError:
            # The reader went away (`... | head`): stop quietly, as other command-line tools do.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise SystemExit(1) from None

    return wrapper
