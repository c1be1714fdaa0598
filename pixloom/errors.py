"""User-facing errors.

Every error a user can cause (bad file, bad shape, unknown name, missing data, a bad argument) is
raised as a :class:`PixloomError`. Its message is one line. The command line prints it and exits with
code 2; it never shows a traceback for these.

Library errors speak of arguments (``known_rows must lie in [0, 28], got 40``). A message marks
each argument it names with :func:`arg`; ``str(error)`` shows the plain name, and the command line
words the same message with its flags through :meth:`PixloomError.worded`
(``--keep-rows must lie in [0, 28], got 40``).
"""

import re

CAPTION_EXTRA = 'pip install "pixloom[caption]"'
_MARK = re.compile("\u2039([A-Za-z_][A-Za-z0-9_]*)\u203a")


def arg(name: str) -> str:
    """An argument's name inside an error message (shown as a flag by the command line)."""
    return f"\u2039{name}\u203a"


def render(text: str, spell=lambda name: name) -> str:
    """``text`` with each argument marked by :func:`arg` spelled by ``spell(name)``."""
    return _MARK.sub(lambda m: spell(m.group(1)), text)


class PixloomError(Exception):
    """An error caused by user input; its message is one line that says what to do."""

    def __str__(self) -> str:
        return self.worded(lambda name: name)

    def worded(self, spell) -> str:
        """The message with each marked argument spelled by ``spell(name)``."""
        return render(super().__str__(), spell)


class ArgumentError(PixloomError, ValueError):
    """A bad value for the argument ``argument`` of a library function: ``"<argument> <message>"``."""

    def __init__(self, argument: str, message: str):
        self.argument = argument
        super().__init__(f"{arg(argument)} {message}")


class DataError(PixloomError):
    """A data set cannot be found, downloaded, verified or read."""


class CheckpointError(PixloomError):
    """A saved model or checkpoint is missing, corrupt or belongs to another model."""


class TrainingDiverged(PixloomError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


class RunLocked(PixloomError):
    """Another process is using the run directory."""


def one_line(exc: BaseException | str) -> str:
    """The first line of an exception's message (or of a string), never empty."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
