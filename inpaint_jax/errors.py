"""User errors: bad configs, flags, paths and files.

They are reported as one line naming the field or file, what was wrong and
what is accepted, and the command exits with status 2, without a traceback.
Tracebacks are for bugs.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

EXIT_USER_ERROR = 2


class UserError(ValueError):
  """An error in what the user asked for (config, flags, input files)."""


@contextlib.contextmanager
def as_user_errors() -> Iterator[None]:
  """Turns ValueError / FileNotFoundError raised inside into UserError.

  Wrap the set-up of a command (config checks, building modules, opening
  data): the errors raised there are about the user's input, and their
  messages name the config field or file.
  """
  try:
    yield
  except (ValueError, FileNotFoundError, NotADirectoryError, IsADirectoryError) as e:
    raise UserError(clean_message(e)) from e


def clean_message(e: BaseException | str) -> str:
  """One readable line from an exception (ml_collections wraps repr()s in its messages)."""
  text = str(e)
  if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
    text = text[1:-1]
  text = text.replace("\\'", "'").replace('\\"', '"').replace("\\n", " ").replace("\n", " ")
  return " ".join(text.split())


def exit_with(message: str) -> None:
  """Prints `error: message` to stderr and exits with status 2."""
  print(f"error: {message}", file=sys.stderr, flush=True)
  sys.exit(EXIT_USER_ERROR)
