"""Training progress: an ETA that leaves the first step (compilation) out, the final hint."""

import pytest
from absl import logging

from inpaint_jax import progress, train


def test_eta_is_unknown_until_a_step_after_the_first_is_timed():
  # Step 1 took 60 s (compilation): no honest estimate exists yet.
  assert progress.eta_seconds([(0, 0.0), (1, 60.0)], total_steps=100) is None


def test_eta_times_only_the_steps_after_the_first():
  # 60 s for step 1, then 2 s a step for steps 2..11: 89 steps left at 2 s.
  marks = [(0, 0.0), (1, 60.0), (11, 80.0)]
  assert progress.eta_seconds(marks, total_steps=100) == pytest.approx(89 * 2.0)


def test_eta_averages_from_the_first_step_to_the_latest_mark():
  marks = [(0, 0.0), (1, 60.0), (11, 70.0), (21, 100.0)]  # 40 s over steps 2..21
  assert progress.eta_seconds(marks, total_steps=41) == pytest.approx(20 * 2.0)


def test_eta_of_a_resumed_run_leaves_out_its_first_step():
  marks = [(500, 0.0), (501, 90.0), (600, 189.0)]  # 1 s a step after step 501
  assert progress.eta_seconds(marks, total_steps=1000) == pytest.approx(400.0)


def test_eta_is_zero_at_the_end():
  assert progress.eta_seconds([(0, 0.0), (1, 60.0)], total_steps=1) == 0.0
  assert progress.eta_seconds([(0, 0.0), (1, 60.0), (4, 66.0)], total_steps=4) == 0.0


def test_progress_reports_the_first_step_then_rates_between_lines():
  p = progress.Progress(total_steps=101, start_step=0, now=1000.0)
  first = p.update(1, 1060.0)
  assert first.first_step_sec == pytest.approx(60.0)
  assert first.eta_sec is None
  second = p.update(51, 1110.0)  # 50 steps in 50 s
  assert second.first_step_sec is None
  assert second.steps_per_sec == pytest.approx(1.0)
  assert second.eta_sec == pytest.approx(50.0)
  third = p.update(101, 1210.0)  # 50 steps in 100 s; the run is over
  assert third.steps_per_sec == pytest.approx(0.5)
  assert third.eta_sec == 0.0


def test_progress_estimate_uses_all_steps_since_the_first():
  p = progress.Progress(total_steps=1000, start_step=0, now=0.0)
  p.update(1, 100.0)
  for step in range(100, 1000, 100):
    timing = p.update(step, 100.0 + (step - 1) * 0.5)
  # 0.5 s a step from step 1 on, whatever the number of lines in between.
  assert timing.eta_sec == pytest.approx(100 * 0.5)


def test_log_line_says_when_the_eta_is_not_known_yet(monkeypatch):
  lines = []
  monkeypatch.setattr(logging, "info", lambda fmt, *args: lines.append(fmt % args))
  p = progress.Progress(total_steps=10, start_step=0, now=0.0)
  progress.log_line(1, 10, {"g/l1": 0.5}, p.update(1, 42.0))
  progress.log_line(5, 10, {"g/l1": 0.25}, p.update(5, 46.0))
  assert lines == [
      "step 1/10 | g/l1=0.5 | first step 42.0s (includes compilation) | "
      "ETA after the next log line",
      "step 5/10 | g/l1=0.25 | 1 steps/s | ETA 0m05s"]


def test_format_duration():
  assert progress.format_duration(65) == "1m05s"
  assert progress.format_duration(3723) == "1h02m03s"
  assert progress.format_duration(-3) == "0m00s"


def test_finished_run_names_the_inpaint_command_for_its_workdir():
  command = train.inpaint_command("runs/my demo")
  assert " -m inpaint_jax.inpaint --checkpoint 'runs/my demo' " in command
  assert command.endswith("--image photo.png --mask photo_mask.png --output out.png")
