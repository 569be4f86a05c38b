"""User-facing errors: the CLI prints these as one line and exits with code 2, without a traceback."""


class RoboilError(Exception):
    """A mistake the user can fix (bad config, missing file, unknown plugin name).

    The message names the problem and the fix, in one line.
    """
