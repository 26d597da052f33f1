"""The one exception type for mistakes a user can fix (bad recipe, bad data, missing file)."""


class UserError(Exception):
    """A problem in the user's input. Scripts print its message on one line and exit 2."""

    exit_code = 2


class StopRequested(BaseException):
    """Ctrl-C or SIGTERM before a run had anything to save (loading, its first evaluation): it just ends.

    A BaseException, like KeyboardInterrupt: libraries that wrap `except Exception` around their imports
    (transformers' lazy modules) must not turn a stop into an import error."""


def first_line(err: BaseException) -> str:
    """The first line of an exception's message (library errors often run to pages), else its type name."""
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
