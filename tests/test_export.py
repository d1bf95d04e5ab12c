"""`python -m inpaint_jax.export`: reloaded in a process without project code, same output."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import helpers
import jax
import lama_fixtures as lf
import numpy as np
import pytest

from inpaint_jax import export as export_cli
from inpaint_jax import restore
from inpaint_jax.convert import __main__ as convert_cli
from inpaint_jax.inference import engine as inference

pytest.importorskip("flatbuffers", reason="jax.export serialization needs flatbuffers")
jax.config.update("jax_disable_most_optimizations", True)

RELOAD = textwrap.dedent("""
    import sys
    import jax
    import numpy as np
    exported = jax.export.deserialize(bytearray(open(sys.argv[1], "rb").read()))
    data = np.load(sys.argv[2])
    out = np.asarray(exported.call(data["image"], data["mask"]))
    assert not [m for m in sys.modules if m.startswith("inpaint_jax")]
    np.save(sys.argv[3], out)
""")


def test_export_reloads_without_project_code(tmp_path, capsys):
  g, d = lf.random_lama_variables(helpers.tiny_config())
  lf.save_lightning_checkpoint(str(tmp_path / "t.ckpt"), lf.official_state_dict(g, d))
  md = str(tmp_path / "md")
  convert_cli.run(["lama", "--checkpoint", str(tmp_path / "t.ckpt"), "--output", md])
  h, w = 37, 45  # padded to 40 x 48 inside the exported program
  out = str(tmp_path / "lama.bin")
  export_cli.main(["--checkpoint", md, "--output", out, "--height", str(h), "--width", str(w)])
  rng = np.random.default_rng(0)
  image = rng.random((2, h, w, 3)).astype(np.float32)
  mask = np.zeros((2, h, w, 1), np.float32)
  mask[0, 5:20, 10:30] = 1
  mask[1, 20:35, 2:12] = 1
  np.savez(tmp_path / "in.npz", image=image, mask=mask)
  env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
  env.update(JAX_PLATFORMS="cpu", **helpers.FAST_COMPILE_ENV)
  r = subprocess.run([sys.executable, "-c", RELOAD, out, str(tmp_path / "in.npz"),
                      str(tmp_path / "out.npy")], cwd=str(tmp_path), env=env,
                     capture_output=True, text=True, timeout=120)
  assert r.returncode == 0, r.stderr
  got = np.load(tmp_path / "out.npy")
  config, g_model, variables = restore.load_generator(md)
  engine = inference.Inpainter(config, g_model, variables)
  for i in range(2):
    np.testing.assert_allclose(got[i], engine(image[i], mask[i]), atol=1e-5)
  # Spatial polymorphism is refused for FFT models with one line, exit status 2.
  with pytest.raises(SystemExit) as exc:
    export_cli.main(["--checkpoint", md, "--output", str(tmp_path / "p.bin"), "--polymorphic"])
  assert exc.value.code == 2
  assert "accepted: --height H --width W" in capsys.readouterr().err
