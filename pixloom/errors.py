"""User-facing errors.

Every error a user can cause (bad file, bad shape, unknown name, missing data) is raised as a
:class:`PixloomError`. The CLI prints its message on one line and exits with code 2; it never shows
a traceback for these.
"""


class PixloomError(Exception):
    """An error caused by user input; its message is one line that says what to do."""


class DataError(PixloomError):
    """A data set cannot be found, downloaded, verified or read."""


class CheckpointError(PixloomError):
    """A saved model or checkpoint is missing, corrupt or belongs to another model."""


class TrainingDiverged(PixloomError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""
