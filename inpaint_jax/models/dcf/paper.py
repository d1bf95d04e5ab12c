"""DCF's evaluation protocol: what its README reports.

The README shows validation curves peaking at PSNR 24.5 dB and SSIM 0.893 (and L1 0.102,
computed on ImageNet-normalised images, so not comparable with L1 in [0, 1]). The
official code scores the first 224 validation images of an unnamed dataset at 128 px
with fresh random-walk stroke masks of 5-15 % per image, on the composite; the closest
here is the run's own training mask generator (`eval.masks=train`, DCF's random walk)
with a fixed seed.
"""

ROW = "random-walk strokes 5-15 % (the training masks)"

README = dict(
    title="DCF, README validation figures (128 px; PSNR, SSIM)",
    data="dcf_unnamed_val_first224",
    metrics="psnr,ssim,l1",
    rows=((ROW, "train"),),
    published=(dict(model="DCF (README, best epoch)", row=ROW,
                    values=dict(psnr=24.5, ssim=0.893)),),
    note="the README's L1 (0.102) is on ImageNet-normalised images and is left out; its "
         "dataset is not named, so no run here uses the same data.")
