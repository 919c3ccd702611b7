"""The one exception type that alliance_core raises for problems a user can fix."""


class AnalysisError(ValueError):
    """A problem with the data or the requested model, phrased for the person who can fix it.

    The message names the row and column (or the setting) at fault and, where one exists,
    what to do instead. The dashboard shows it as is; no traceback reaches the user.
    """
