"""The one exception type that user-facing commands turn into a one-line message.

Anything a person can get wrong - a malformed data file, a tampered weights file, a bad flag -
raises :class:`UserError` (or a subclass) with a message that names the file or flag and says
what is wrong.  Command-line entry points catch it (:func:`kit.cli.exit_on_user_error`), print
``error: <message>`` on one line and exit with status 2; everything else is a bug and keeps its
traceback.
"""


class UserError(Exception):
    """A problem with the user's input, reported as one line, never as a traceback."""


class DataError(UserError):
    """A data file (IDX) is missing, truncated or malformed, or images and labels disagree."""


class WeightsError(UserError):
    """A weights file is missing, not a weights file, tampered with or of another model."""
