"""Image-quality metrics for inpainting evaluation (JAX, batched, jit-able).

`image_metrics(pred, target)` gives PSNR, SSIM and L1 per image; LPIPS and FID need
converted network weights and live in their own modules.
"""

from inpaint_jax.metrics.pixel import image_metrics, l1, mse, psnr
from inpaint_jax.metrics.structural import ssim

__all__ = ["image_metrics", "l1", "mse", "psnr", "ssim"]
