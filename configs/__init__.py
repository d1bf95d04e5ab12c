"""The run configs, one file per model family (`get_config(arg)`, big_vision style).

Installed as the package `inpaint_jax.configs`, so they load by name from any working
directory: `--config=lama:demo` is `configs/lama.py:demo` (see `inpaint_jax.config_lib`).
Load them through `--config` / `config_lib.load_config_file`, not by importing.
"""
