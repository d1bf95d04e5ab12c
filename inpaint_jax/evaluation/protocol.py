"""A paper's evaluation protocol: its table layout and its published figures.

A config's `eval.protocol` (built with `config_lib.eval_protocol`) describes how a paper
reports results:

  title        the table's caption ("DGFNet, Table 1 (Paris StreetView, 256 px)")
  data         the data the published figures were measured on ("paris_streetview_test")
  metrics      the paper's columns, in its order ("l1,ssim,psnr,fid")
  rows         ((row label, mask set), ...): the paper's rows, each scored on one of our
               mask sets (`eval.masks` is set to these sets)
  published    ({"model", "row", "values": {metric: value}, "note"}, ...): figures from
               the paper; `row` names the protocol row it belongs beside, or is "" when
               the paper's mask set has no counterpart here (listed under the table)
  note         where the figures come from and what is not known

`--mode=eval` scores every mask set, then `table` writes the results in the paper's layout:
one row per protocol row, for each metric our value and, beside it, each published
figure. A published figure is marked "published" when the run was evaluated on the same
data (`eval.data_name` equals `data`), else "published, other data": the numbers then
say how far apart two settings are, not whether the port reproduces the paper.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from inpaint_jax.evaluation.scoring import HIGHER_IS_BETTER

SAME_DATA = "published"
OTHER_DATA = "published, other data"


def rows(protocol: Mapping[str, Any] | None) -> list[tuple[str, str]]:
  """[(row label, mask set)] of a protocol (empty without one)."""
  if not protocol:
    return []
  return [(str(label), str(mask_set)) for label, mask_set in protocol.get("rows", ())]


def check(protocol: Mapping[str, Any], field: str = "eval.protocol") -> None:
  """Raises ValueError naming the field when the protocol is malformed."""
  labels = [label for label, _ in rows(protocol)]
  if not labels:
    raise ValueError(f"config field {field}.rows is empty; give ((label, mask set), ...)")
  if len(set(labels)) != len(labels):
    raise ValueError(f"config field {field}.rows: row labels repeat: {labels}")
  metrics = [m for m in str(protocol.get("metrics", "")).split(",") if m]
  unknown = sorted(set(metrics) - set(HIGHER_IS_BETTER))
  if not metrics or unknown:
    raise ValueError(f"config field {field}.metrics={protocol.get('metrics')!r}: accepted: "
                     f"comma-separated from {', '.join(HIGHER_IS_BETTER)}")
  for i, pub in enumerate(protocol.get("published", ()) or ()):
    row = str(pub.get("row", ""))
    if row and row not in labels:
      raise ValueError(f"config field {field}.published[{i}].row={row!r}: not a row; "
                       f"accepted: {', '.join(labels)} or '' (listed under the table)")
    bad = sorted(set(pub.get("values", {})) - set(metrics))
    if bad:
      raise ValueError(f"config field {field}.published[{i}].values: {', '.join(bad)} not "
                       f"in {field}.metrics ({','.join(metrics)})")


def _fmt(v: Any, metric: str) -> str:
  if v is None or (isinstance(v, float) and math.isnan(v)):
    return "n/a"
  return f"{v:.2f}" if metric in ("psnr", "fid") else f"{v:.4f}"


def _published_fmt(v: float, metric: str) -> str:
  del metric   # papers print their own precision: shown as given
  return f"{v:g}"


def table(protocol: Mapping[str, Any], results: Mapping[str, Mapping[str, Any]],
          data_name: str = "", model: str = "ours") -> dict[str, Any]:
  """The results in the paper's layout.

  Args:
    protocol: the `eval.protocol` group.
    results: {mask set: results dict of `runner.run`} (metric means, "unavailable").
    data_name: `eval.data_name`, the name of the data the run was scored on.
    model: the column label of our figures.

  Returns:
    {"title", "mark": "published" or "published, other data", "metrics", "rows": [{"row",
    "mask_set", "n_images", "ours": {metric: value}, "published": {model: {metric:
    value}}}], "unplaced": [published entries with no row], "markdown": the table text}.
  """
  check(protocol)
  metrics = [m for m in str(protocol["metrics"]).split(",") if m]
  same = bool(data_name) and data_name == str(protocol.get("data", ""))
  mark = SAME_DATA if same else OTHER_DATA
  published = [dict(p) for p in protocol.get("published", ()) or ()]
  # A published model's column for a metric when one of its figures sits beside a row;
  # a model with no figures at all gets every column, printing "—" (the paper has the
  # figures, this repository does not record them).
  def has_columns(model: str, metric: str) -> bool:
    mine = [p for p in published if str(p["model"]) == model]
    return (not any(p.get("values") for p in mine)
            or any(p.get("row") and metric in p.get("values", {}) for p in mine))

  sources = list(dict.fromkeys(str(p["model"]) for p in published))
  columns = {m: [src for src in sources if has_columns(src, m)] for m in metrics}
  out_rows, unavailable = [], {}
  for label, mask_set in rows(protocol):
    res = results.get(mask_set, {})
    unavailable.update(res.get("unavailable") or {})
    pubs = {str(p["model"]): dict(p["values"]) for p in published if p.get("row") == label}
    out_rows.append({"row": label, "mask_set": mask_set, "n_images": res.get("n_images"),
                     "ours": {m: res.get(m) for m in metrics}, "published": pubs})

  head = ["row", "mask set", "images"]
  for m in metrics:
    arrow = "↑" if HIGHER_IS_BETTER[m] else "↓"
    head.append(f"{m} {arrow} {model}")
    head += [f"{m} {src} ({mark})" for src in columns[m]]
  lines = [f"### {protocol.get('title', 'Evaluation protocol')}", "",
           "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
  for r in out_rows:
    cells = [r["row"], f"`{r['mask_set']}`", str(r["n_images"] or 0)]
    for m in metrics:
      cells.append(_fmt(r["ours"][m], m))
      for src in columns[m]:
        v = r["published"].get(src, {}).get(m)
        cells.append("—" if v is None else _published_fmt(v, m))
    lines.append("| " + " | ".join(cells) + " |")
  unplaced = [p for p in published if not p.get("row") and p.get("values")]
  if unplaced:
    lines += ["", f"Published figures whose mask sets have no counterpart here ({mark}):", ""]
    for p in unplaced:
      vals = ", ".join(f"{m} {_published_fmt(v, m)}" for m, v in dict(p["values"]).items())
      lines.append(f"- {p['model']}, {p.get('note', '')}: {vals}")
  lines.append("")
  lines.append(f"Our figures: data `{data_name or 'unnamed'}`; published figures: data "
               f"`{protocol.get('data', '')}` ({mark}).")
  for m, why in unavailable.items():
    if m in metrics:
      lines.append(f"- {m}: n/a ({why})")
  if protocol.get("note"):
    lines.append(f"- {protocol['note']}")
  return {"title": str(protocol.get("title", "")), "mark": mark, "metrics": metrics,
          "rows": out_rows, "unplaced": unplaced, "markdown": "\n".join(lines) + "\n"}
