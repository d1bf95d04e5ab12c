"""Every registry's names, and the package's import layering.

A move of a module can never drop a registered part silently: the expected lists are
written out in full (a new part adds its name here). The checks run in a fresh
interpreter, because other tests register probe parts in the registries of the
worker process they share.
"""

import json
import subprocess
import sys
import textwrap

EXPECTED = {
    "AUGMENTATIONS": ["distortions", "flip", "none", "resize_flip_jitter"],
    "BACKBONES": ["ade20k_resnet50", "vgg16", "vgg19"],
    "CONVERTERS": ["ade20k_resnet50", "dcf", "dfnet", "inception", "lama", "lpips", "rfr",
                   "vgg16", "vgg19"],
    "DATA_SOURCES": ["embedded", "folder", "tfds"],
    "DISCRIMINATORS": ["dcf_patch", "dpnet_patch", "nlayer", "sn_patchgan"],
    "GENERATORS": ["dcf", "dfnet", "dgfnet", "dpnet", "ffc_resnet", "rfr"],
    "INPAINTERS": ["dcf", "dfnet", "dgfnet", "dpnet", "ffc_resnet", "rfr"],
    "LOSSES": [
        "bce_d", "bce_g", "boundary_gradient", "charbonnier", "color_consistency",
        "feature_matching", "focal_frequency", "gradient_penalty", "gram_style", "hinge_d",
        "hinge_g", "hole_l1", "l1", "log_spectrum_l1", "lsgan_d", "lsgan_g", "masked_l1",
        "multiscale_l1", "nonsaturating_d", "nonsaturating_g", "r1_penalty", "resnet_pl",
        "smooth_transition", "total_variation", "valid_l1", "vgg_perceptual", "wgan_d",
        "wgan_g"],
    "MASK_GENERATORS": [
        "dcf_random_walk", "dfnet_folder", "dfnet_free_form", "lama_box", "lama_irregular",
        "lama_medium_256", "lama_medium_512", "lama_mixed", "lama_thick_256", "lama_thick_512",
        "lama_thin_256", "lama_thin_512", "square", "study_mixed"],
}

# Command modules define absl flags at import and are never imported as libraries.
COMMANDS = ["inpaint_jax.main", "inpaint_jax.bench", "inpaint_jax.eval_mode",
            "inpaint_jax.metrics.bench", "inpaint_jax.data.masks_bench",
            "inpaint_jax.inpaint", "inpaint_jax.export", "inpaint_jax.evaluate",
            "inpaint_jax.masks", "inpaint_jax.inference_bench", "inpaint_jax.convert.__main__",
            "inpaint_jax.learning",
            "inpaint_jax.__main__"]

# Library layers that sit below the commands and the run core.
LIBRARY = ("inpaint_jax.models", "inpaint_jax.backbones", "inpaint_jax.weights",
           "inpaint_jax.data", "inpaint_jax.losses", "inpaint_jax.metrics",
           "inpaint_jax.inference", "inpaint_jax.evaluation")


def _run(code: str) -> dict:
  out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], check=True,
                       capture_output=True, text=True, env=None)
  return json.loads(out.stdout.strip().splitlines()[-1])


def test_the_library_packages_register_exactly_the_expected_names():
  # The registering packages are imported by their parents' __init__: importing the
  # library entry points must register everything, with no scan of the package.
  got = _run("""
      import json
      import inpaint_jax.models, inpaint_jax.losses, inpaint_jax.data, inpaint_jax.backbones
      import inpaint_jax.convert
      from inpaint_jax import registry
      print(json.dumps({n: r.names() for n, r in vars(registry).items()
                        if isinstance(r, registry.Registry)}))
  """)
  assert got == EXPECTED


def test_importing_every_module_registers_nothing_more():
  got = _run(f"""
      import importlib, json, pkgutil
      import inpaint_jax
      from inpaint_jax import registry
      for info in pkgutil.walk_packages(inpaint_jax.__path__, "inpaint_jax."):
        if info.name.endswith("__main__") or info.name in {COMMANDS!r}:
          continue
        importlib.import_module(info.name)
      print(json.dumps({{n: r.names() for n, r in vars(registry).items()
                        if isinstance(r, registry.Registry)}}))
  """)
  assert got == EXPECTED


def test_no_import_cycles_and_no_library_module_imports_a_command():
  """Reads every module's imports (module level and function level) from its source."""
  got = _run(f"""
      import ast, json, pathlib
      import inpaint_jax
      root = pathlib.Path(inpaint_jax.__file__).parent
      mods = {{}}
      for path in root.rglob("*.py"):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        if is_pkg:
          parts = parts[:-1]
        mods[".".join(parts)] = (path, is_pkg)
      edges = {{}}
      for name, (path, is_pkg) in mods.items():
        pkg = name if is_pkg else name.rpartition(".")[0]
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
          if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
          elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
              up = pkg.split(".")[:len(pkg.split(".")) - node.level + 1]
              base = ".".join(up + ([base] if base else []))
            targets = [base] + [base + "." + a.name for a in node.names]
          else:
            continue
          deps |= {{t for t in targets if t in mods and t != name}}
        edges[name] = sorted(deps)
      commands = set({COMMANDS!r})
      bad = sorted(f"{{m}} -> {{d}}" for m, ds in edges.items()
                   if any(m == p or m.startswith(p + '.') for p in {LIBRARY!r})
                   for d in ds if d in commands)
      # Cycles among modules (a package's __init__ importing its own children is not one).
      cycles, state = [], {{}}
      def visit(m, stack):
        state[m] = 1
        stack.append(m)
        for d in edges[m]:
          if mods[d][1] and m.startswith(d + "."):
            continue
          if state.get(d) == 1:
            cycles.append(stack[stack.index(d):] + [d])
          elif d not in state:
            visit(d, stack)
        stack.pop()
        state[m] = 2
      for m in sorted(edges):
        if m not in state:
          visit(m, [])
      print(json.dumps({{"command_imports": bad, "cycles": cycles}}))
  """)
  assert got == {"command_imports": [], "cycles": []}
