"""DGFNet's evaluation protocol (its Table 1), which RFR-Net's config shares.

The paper compares on Paris StreetView (256 px) with irregular and square holes in three
area bins, reporting mean L1, SSIM, PSNR and FID; RFR-Net is one of its rows. The
figures themselves are not recorded here: the paper's tables were not available when this
was written, so the published columns print "—". Add them, for any row, as
`eval.protocol.published` entries ({"model", "row", "values": {metric: value}}).
"""

BINS = ((20, 30), (30, 40), (40, 50))

TABLE_1 = dict(
    title="DGFNet, Table 1 (Paris StreetView, 256 px: mean L1, SSIM, PSNR, FID)",
    data="paris_streetview_test",
    metrics="l1,ssim,psnr,fid",
    rows=tuple((f"{kind} {lo}-{hi} %", f"{kind}_{lo}_{hi}")
               for kind in ("irregular", "square") for lo, hi in BINS),
    published=(dict(model="RFR-Net", row="", values={}),
               dict(model="DGFNet", row="", values={})),
    note="DGFNet Table 1's RFR-Net and DGFNet figures are not recorded in this repository "
         "(add them as eval.protocol.published entries); FID needs eval.inception_weights.")
