"""Training progress lines: throughput and a time-left estimate that leaves compilation out.

The first step of a run (and of every resumed run) traces and compiles the train step with
XLA, which on a CPU can take minutes while later steps take a fraction of a second. A rate
measured over an interval that includes it would make the ETA of the first log lines
minutes or hours too long, so the estimate here times only the steps after the first one:
until a log line after the first step has been reached, the ETA is unknown and the line says
so.

The loop only learns that steps have finished when it fetches their metrics (JAX dispatches
steps asynchronously), so time is read at log lines: each is a mark (step reached, wall
time), and `eta_seconds` turns the marks into seconds left.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

from absl import logging

Mark = tuple[int, float]


def eta_seconds(marks: Sequence[Mark], total_steps: int) -> float | None:
  """Seconds left until `total_steps`, timing only the steps after the first one.

  Args:
    marks: (step reached, wall time in seconds) pairs in order. The first is the start: the
      step the run began from and the time before its first step; the first step after it
      includes compilation and is left out of the estimate.
    total_steps: the step the run stops at.

  Returns:
    Seconds left: the steps left times the mean time per step between the first mark past
    the first step and the last mark. 0.0 once the last mark has reached `total_steps`;
    None while no step after the first one has been timed.
  """
  last_step, last_time = marks[-1]
  steps_left = max(total_steps - last_step, 0)
  if steps_left == 0:
    return 0.0
  first_done = marks[0][0] + 1
  ref_step, ref_time = next(((s, t) for s, t in marks if s >= first_done), (last_step, last_time))
  if last_step <= ref_step:
    return None
  return steps_left * (last_time - ref_time) / (last_step - ref_step)


def format_duration(seconds: float) -> str:
  """"1h02m03s", or "2m03s" under an hour."""
  seconds = int(max(0, seconds))
  h, rem = divmod(seconds, 3600)
  m, s = divmod(rem, 60)
  return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


@dataclasses.dataclass(frozen=True)
class Timing:
  """What one log line reports about speed.

  Attributes:
    steps_per_sec: steps since the previous log line (or the start) over the time since
      then; the value `metrics.jsonl` and TensorBoard record.
    eta_sec: `eta_seconds` of the marks so far (None: not known yet).
    first_step_sec: the time of the run's first step (compilation included) on the line
      that covers only that step; None on every other line.
  """

  steps_per_sec: float
  eta_sec: float | None
  first_step_sec: float | None


class Progress:
  """Marks the log lines of a run and derives their `Timing`."""

  def __init__(self, total_steps: int, start_step: int, now: float):
    self.total_steps = total_steps
    self._marks: list[Mark] = [(start_step, now)]

  def update(self, step: int, now: float) -> Timing:
    """Records that `step` was reached at wall time `now` (seconds)."""
    (start_step, _), (prev_step, prev_time) = self._marks[0], self._marks[-1]
    # Every mark after the start lies past the first step, so the estimate needs only the
    # start, the first of them and the latest one.
    self._marks = [*self._marks[:2], (step, now)]
    rate = (step - prev_step) / max(now - prev_time, 1e-9)
    first = now - prev_time if prev_step == start_step and step == start_step + 1 else None
    return Timing(rate, eta_seconds(self._marks, self.total_steps), first)


def log_line(step: int, total: int, scalars: Mapping[str, float], timing: Timing) -> None:
  """Logs `step 12/100 | name=value ... | 3.2 steps/s | ETA 0m27s`.

  The line of the first step gives that step's time instead of a rate, and an ETA only once
  a later step has been timed.
  """
  parts = " ".join(f"{k}={v:.4g}" for k, v in sorted(scalars.items()))
  if timing.first_step_sec is not None:
    speed = f"first step {timing.first_step_sec:.1f}s (includes compilation)"
  else:
    speed = f"{timing.steps_per_sec:.3g} steps/s"
  eta = ("ETA after the next log line" if timing.eta_sec is None
         else f"ETA {format_duration(timing.eta_sec)}")
  logging.info("step %d/%d | %s | %s | %s", step, total, parts, speed, eta)
