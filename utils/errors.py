"""The one exception type for mistakes a user can fix (bad recipe, bad data, missing file)."""


class UserError(Exception):
    """A problem in the user's input. Scripts print its message on one line and exit 2."""

    exit_code = 2
