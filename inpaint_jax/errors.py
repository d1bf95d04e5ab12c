"""User errors: bad configs, flags, paths and files.

They are reported as one line naming the field or file, what was wrong and
what is accepted, and the command exits with status 2, without a traceback.
Tracebacks are for bugs. A command stopped by Ctrl-C exits with status 130 after one line
(`Interrupted`, `exit_interrupted`). `ArgumentParser` is the parser of every argparse
command (one flag convention, defaults in `--help`, one-line errors).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Iterator
from typing import Any, NoReturn

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130   # 128 + SIGINT, what shells report for a Ctrl-C


class UserError(ValueError):
  """An error in what the user asked for (config, flags, input files)."""


class Interrupted(KeyboardInterrupt):
  """Ctrl-C (SIGINT) stopped a command after it put its work in a safe state.

  A KeyboardInterrupt, so that library callers that do not catch it stop as on any
  Ctrl-C; commands catch it and exit with `exit_interrupted`. The message says what was
  kept (e.g. the checkpoint of the interrupted step).
  """


@contextlib.contextmanager
def as_user_errors() -> Iterator[None]:
  """Turns ValueError / FileNotFoundError raised inside into UserError.

  Wrap the set-up of a command (config checks, building modules, opening
  data): the errors raised there are about the user's input, and their
  messages name the config field or file.
  """
  try:
    yield
  except (ValueError, FileNotFoundError, NotADirectoryError, IsADirectoryError,
          PermissionError, FileExistsError) as e:
    raise UserError(clean_message(e)) from e


def clean_message(e: BaseException | str) -> str:
  """One readable line from an exception (ml_collections wraps repr()s in its messages)."""
  text = str(e)
  if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
    text = text[1:-1]
  text = text.replace("\\'", "'").replace('\\"', '"').replace("\\n", " ").replace("\n", " ")
  return " ".join(text.split())


def exit_with(message: str) -> NoReturn:
  """Prints `error: message` to stderr and exits with status 2."""
  print(f"error: {message}", file=sys.stderr, flush=True)
  sys.exit(EXIT_USER_ERROR)


def exit_interrupted(message: str = "") -> NoReturn:
  """Prints `interrupted: message` to stderr and exits with status 130 (Ctrl-C)."""
  print(f"interrupted{': ' + message if message else ''}", file=sys.stderr, flush=True)
  sys.exit(EXIT_INTERRUPTED)


def check_output_location(path: str, flag: str, *, folder: bool = False) -> None:
  """Refuses an output path whose folder cannot be made or written, before any work.

  Missing folders are fine (the commands create them when they write); the nearest one
  that exists must be a folder the user may write to. Nothing is created here.

  Args:
    path: the output file, or with `folder` the output folder itself.
    flag: the flag that gave it, for the message.
    folder: `path` is a folder the command writes into.

  Raises:
    UserError: naming `flag` and the folder.
  """
  existing = os.path.abspath(path) if folder else os.path.dirname(os.path.abspath(path))
  while not os.path.exists(existing):
    existing = os.path.dirname(existing)
  if not os.path.isdir(existing):
    raise UserError(f"{flag} {path}: {existing} is a file, not a folder")
  if not os.access(existing, os.W_OK | os.X_OK):
    raise UserError(f"{flag} {path}: the folder {existing} is not writable")


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
  """Help text with each flag's default and only the canonical spelling of each flag.

  Like `argparse.ArgumentDefaultsHelpFormatter`, but without `(default: None)` /
  `(default: False)` noise, and keeping a description or epilog of several lines as written
  (examples); a one-line description is wrapped.
  """

  def _fill_text(self, text: str, width: int, indent: str) -> str:
    # One-line text is wrapped; text with line breaks (examples) is kept as written.
    if "\n" not in text.strip():
      return argparse.HelpFormatter._fill_text(self, text, width, indent)
    return super()._fill_text(text, width, indent)

  def _get_help_string(self, action: argparse.Action) -> str:
    text = action.help or ""
    default = action.default
    # `is`, not `in`: a default of 0 is shown, only "no value" defaults are not.
    unset = default is None or default is False or default is argparse.SUPPRESS or default == ""
    if "%(default)" not in text and action.option_strings and not unset:
      text += " (default: %(default)s)"
    return text

  def _format_action_invocation(self, action: argparse.Action) -> str:
    aliases = getattr(action, "aliases", ())
    if not aliases:
      return super()._format_action_invocation(action)
    # The dash-case spellings are accepted but not advertised.
    shown = [s for s in action.option_strings if s not in aliases]
    saved, action.option_strings = action.option_strings, shown
    try:
      return super()._format_action_invocation(action)
    finally:
      action.option_strings = saved


class ArgumentParser(argparse.ArgumentParser):
  """The argparse parser of every command: one convention for flags, help and errors.

  * Flags are `--snake_case`; each is also accepted as `--dash-case` (a hidden alias), so
    `--input_dir` and `--input-dir` are the same flag. Either spelling may be given to
    `add_argument`; the snake_case one is canonical (the `dest` and what help shows).
  * Every flag needs help text; `--help` shows defaults and the description / epilog as
    written (give a user-facing description, not the module docstring).
  * A bad command line is one line on stderr, `error: ... (see --help)`, exit status 2
    (argparse's status), without the usage block or a traceback.
  """

  def __init__(self, prog: str, description: str, *, epilog: str | None = None,
               **kwargs: Any):
    self._aliases: dict[str, str] = {}   # alias -> canonical option string
    super().__init__(prog=prog, description=description, epilog=epilog,
                     formatter_class=HelpFormatter, **kwargs)

  def add_argument(self, *names: str, **kwargs: Any) -> argparse.Action:
    """`argparse.ArgumentParser.add_argument`, adding the dash-case alias of each flag."""
    if not names or not names[0].startswith("-"):
      return super().add_argument(*names, **kwargs)
    if not kwargs.get("help") and kwargs.get("action") not in ("help", "version"):
      raise TypeError(f"{names[0]}: every flag of a command needs help text")
    canonical, aliases = [], []
    for name in names:
      if name.startswith("--"):
        snake = "--" + name[2:].replace("-", "_")
        dash = "--" + name[2:].replace("_", "-")
        canonical.append(snake)
        if dash != snake:
          aliases.append(dash)
      else:
        canonical.append(name)
    action = super().add_argument(*canonical, *aliases, **kwargs)
    action.aliases = tuple(aliases)
    for alias in aliases:
      self._aliases[alias] = canonical[0]
    return action

  def _get_option_tuples(self, option_string: str) -> list:
    # An abbreviation (`--input` for `--input_dir`) matches both spellings of one flag:
    # one match, not an ambiguous pair, so abbreviations work as they did.
    seen, out = set(), []
    for t in super()._get_option_tuples(option_string):
      if id(t[0]) not in seen:
        seen.add(id(t[0]))
        out.append(t)
    return out

  def error(self, message: str) -> NoReturn:
    for alias, canonical in self._aliases.items():
      message = message.replace(f"{canonical}/{alias}", canonical)
    exit_with(f"{' '.join(message.split())} (see --help)")
