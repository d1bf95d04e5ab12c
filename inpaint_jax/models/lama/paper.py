"""LaMa's evaluation protocol: its Table 1 (FID and LPIPS).

The paper scores 30,000 Places365 `val_large` photos at 512 px and CelebA-HQ at 256 px on
its "narrow", "wide" and "segm." mask sets. Its evaluation code generates thin, medium and
thick masks at 256 and 512 px (our presets of the same names); which of these the
paper's "narrow" and "wide" columns are is not stated in the code, so the published
figures are listed under the table rather than beside a row. Big LaMa has no row in
Table 1 (the paper shows it in one figure, marked "ref. only").
"""

ROWS = tuple((f"{kind} {size}", f"{kind}_{size}") for size in (256, 512)
             for kind in ("thin", "medium", "thick"))

# The demo trains at 64 px; its table also scores the set it validates on, at that size.
DEMO_ROW = ("irregular 20-30 % at 64 px (the demo's scale, not in the paper)",
            "irregular_20_30")

_FOURIER = "LaMa-Fourier (Table 1)"

TABLE_1 = dict(
    title="LaMa, Table 1 (FID, LPIPS; PSNR / SSIM / L1 added, not in the paper)",
    data="places365_val_large_30k",
    metrics="fid,lpips,psnr,ssim,l1",
    rows=ROWS,
    published=(
        dict(model=_FOURIER, row="", note="Places 512, narrow masks",
             values=dict(fid=0.63, lpips=0.090)),
        dict(model=_FOURIER, row="", note="Places 512, wide masks",
             values=dict(fid=2.21, lpips=0.135)),
        dict(model=_FOURIER, row="", note="Places 512, segmentation masks",
             values=dict(fid=5.35, lpips=0.058)),
        dict(model=_FOURIER, row="", note="CelebA-HQ 256, narrow masks",
             values=dict(fid=7.26, lpips=0.085)),
        dict(model=_FOURIER, row="", note="CelebA-HQ 256, wide masks",
             values=dict(fid=6.96, lpips=0.098)),
    ),
    note="FID needs eval.inception_weights and LPIPS eval.lpips_weights (converted files).")

# Big LaMa: the same rows, no published row.
BIG = dict(TABLE_1, title="Big LaMa, LaMa's Table 1 protocol (Big LaMa has no row there)",
           published=())
