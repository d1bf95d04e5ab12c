"""The libraries behind `evaluate` and `eval_mode`: scoring, reports, baselines."""
