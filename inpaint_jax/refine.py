"""LaMa feature refinement (placeholder)."""


def refine_lama(*args, **kwargs):
  raise NotImplementedError
