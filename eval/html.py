"""``index.html`` of a benchmark report: a static page that opens offline and fetches nothing.

It shows the table with 95% bootstrap intervals, the success and precision plots, and one row per
sequence with thumbnails of its first, a middle and its worst frame (lowest IoU averaged over the
trackers) with every box drawn, and links to the raw results. Images are files beside it
(``thumbs/``), linked by relative paths.
"""
from __future__ import annotations

import html
from pathlib import Path
from urllib.parse import quote

import cv2
import numpy as np

from backbones.cli import atomic_path, atomic_write_text
from eval.bootstrap import format_ci
from eval.draw import GT_COLOR, annotate, color, hex_color
from eval.report import Report

THUMB_WIDTH = 240
STYLE = """body{font-family:sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:right;vertical-align:top}th{background:#f2f2f2}
td.name{text-align:left}img.plot{width:480px;margin-right:1em}figure{display:inline-block;margin:0 4px}
figcaption{font-size:80%;text-align:center}.key{display:inline-block;width:1em;height:1em;margin-right:4px}"""


def _href(path: str) -> str:
    return html.escape(quote(path), quote=True)


def _key(bgr) -> str:
    """A small colour square for a legend (outlined, so white shows on white)."""
    return f'<span class="key" style="background:{hex_color(bgr)};outline:1px solid #888"></span>'


def _num(value: object, spec: str) -> str:
    """A number formatted, or '-' for anything else (None, a mask's dict)."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    return format(value, spec) if ok else "-"


def _main_table(summary: dict) -> str:
    """The trackers' table: scores with intervals, the got10k toolkit's AO, speed and cost."""
    head = ("<tr><th>tracker</th><th>AUC [95% CI]</th><th>precision@20px [95% CI]</th><th>AO [95% CI]</th>"
            "<th>AO (got10k toolkit)</th><th>SR0.50</th><th>SR0.75</th><th>FPS</th><th>frames</th>"
            "<th>sequences</th><th>OPs</th><th>budget</th></tr>")
    rows = []
    for i, (name, t) in enumerate(summary["trackers"].items()):
        m = t["mean"]
        cells = [format_ci(m[k], m.get(f"{k}_ci95")) for k in ("auc", "precision", "ao")]
        cells += [_num(m.get("ao_got10k"), ".3f"), _num(m["sr50"], ".3f"), _num(m["sr75"], ".3f"),
                  _num(t.get("fps"), ".1f"), str(m["frames"]), str(m["sequences"]), _num(t.get("ops"), ".3g"),
                  _num(t.get("budget"), ".3f")]
        rows.append(f'<tr><td class="name">{_key(color(i))}{html.escape(name)}</td>'
                    + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return f"<table>{head}{''.join(rows)}</table>"


def _picks(spans: list[range], ious: np.ndarray) -> list[tuple[str, int]]:
    """The first frame tracked, the middle one and the worst one (lowest IoU averaged over the trackers)."""
    first, last = min(s.start for s in spans), max(s.stop for s in spans) - 1
    scored = np.isfinite(ious)
    total = np.where(scored, ious, 0).sum(axis=0)
    mean = np.where(scored.any(axis=0), total / np.maximum(scored.sum(axis=0), 1), np.nan)
    mean[: first + 1] = np.nan
    worst = int(np.nanargmin(mean)) if np.isfinite(mean).any() else last
    return [("first", first), ("middle", (first + last) // 2), ("worst", worst)]


def _thumbnail(frame: Path, gt: np.ndarray, drawn: list, path: Path) -> bool:
    """Draw the boxes on one frame, shrink it to ``THUMB_WIDTH`` and write it; False if unreadable."""
    image = cv2.imread(str(frame), cv2.IMREAD_COLOR) if frame.is_file() else None
    if image is None:
        return False
    image = annotate(image, gt, drawn, legend=False, thickness=max(2, image.shape[1] // 240))
    height = max(1, round(image.shape[0] * THUMB_WIDTH / image.shape[1]))
    image = cv2.resize(image, (THUMB_WIDTH, height), interpolation=cv2.INTER_AREA)
    with atomic_path(path) as tmp:
        if not cv2.imwrite(str(tmp), image):
            raise OSError(f"cannot write thumbnail {path}")
    return True


def _thumbnails(report: Report, seq: str, out: Path) -> list[tuple[str, int, str, float]]:
    """Write the sequence's three thumbnails; return (label, frame index, relative path or '', mean IoU)."""
    trackers = [t for t in report.trackers if seq in report.summary["trackers"][t]["sequences"]]
    frames, gt = report.frames(seq), report.groundtruth(seq)
    boxes = {t: report.boxes(t, seq) for t in trackers}
    ious = np.array([report.ious(t, seq) for t in trackers])
    made = []
    for label, index in _picks([report.run_span(t, seq) for t in trackers], ious):
        drawn = [(t, b[index] if index < len(b) else np.full(4, np.nan), color(report.trackers.index(t)))
                 for t, b in boxes.items()]
        rel = f"thumbs/{seq}.{label}.jpg"
        ok = _thumbnail(frames[index], gt[index], drawn, out / rel)
        col = ious[:, index][np.isfinite(ious[:, index])]
        made.append((label, index, rel if ok else "", float(col.mean()) if col.size else float("nan")))
    return made


def _sequence_rows(report: Report, out: Path) -> str:
    head = "<tr><th>sequence</th>" + "".join(f"<th>{html.escape(t)} AUC</th>" for t in report.trackers) + \
           "<th>frames (first, middle, worst)</th><th>raw results</th></tr>"
    rows = []
    for seq in report.sequences:
        cells = []
        for t in report.trackers:
            m = report.summary["trackers"][t]["sequences"].get(seq)
            cells.append("-" if m is None else f"{m['auc']:.3f}")
        figures = []
        if seq in report.data.get("sequences", {}):
            for label, index, rel, iou in _thumbnails(report, seq, out):
                caption = f"{label}: frame {index + 1}" + ("" if np.isnan(iou) else f", IoU {iou:.2f}")
                img = f'<img src="{_href(rel)}" alt="{html.escape(seq)} {label}">' if rel else ""
                figures.append(f"<figure>{img}<figcaption>{html.escape(caption)}</figcaption></figure>")
        links = [f'<a href="{_href(f"results/{t}/{seq}.txt")}">{html.escape(t)}</a>' for t in report.trackers
                 if seq in report.summary["trackers"][t]["sequences"]]
        rows.append(f'<tr><td class="name">{html.escape(seq)}</td>' + "".join(f"<td>{c}</td>" for c in cells)
                    + f'<td class="name">{"".join(figures)}</td>'
                    + f'<td class="name">{"<br>".join(links)}</td></tr>')
    return f"<table>{head}{''.join(rows)}</table>"


def write_html(report_dir: str | Path, summary: dict | None = None) -> Path:
    """Write ``index.html`` and its thumbnails into a finished report folder; return the page's path."""
    out = Path(report_dir)
    report = Report(out, summary) if summary is not None else Report(out)
    s = report.summary
    boot = s.get("bootstrap", {})
    legend = _key(GT_COLOR) + "ground truth " + " ".join(
        f"{_key(color(i))}{html.escape(t)}" for i, t in enumerate(report.trackers))
    intro = (f"<h1>Benchmark report</h1><p>{len(report.sequences)} sequences, code version "
             f"{html.escape(str(s.get('code_version')))}. Intervals: 95% bootstrap over sequences "
             f"({boot.get('resamples', '-')} resamples, seed {boot.get('seed', '-')}). "
             "AO (got10k toolkit): all sequences' frames pooled, each first frame dropped, boxes clipped to "
             "the image.</p>")
    plots = ('<p><img class="plot" src="success_plots.png" alt="success plot">'
             '<img class="plot" src="precision_plots.png" alt="precision plot"></p>')
    raw = ('<p>Raw data: <a href="summary.json">summary.json</a>, <a href="table.txt">table.txt</a>, '
           "results/&lt;tracker&gt;/&lt;sequence&gt;.txt (1-based x,y,w,h per frame).</p>")
    body = [intro, _main_table(s), plots, f"<h2>Sequences</h2><p>{legend}</p>", _sequence_rows(report, out),
            raw]
    page = (f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>b2track benchmark report</title>'
            f"<style>{STYLE}</style></head><body>{''.join(body)}</body></html>\n")
    atomic_write_text(out / "index.html", page)
    return out / "index.html"
