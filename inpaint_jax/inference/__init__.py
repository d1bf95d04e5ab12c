"""The one inference engine (padding, eval pass, composite), HD strategies and image I/O."""
