"""monitor.py's outputs: the one-line summary, and the HTML report: one self-contained file
(plots embedded as PNG data URIs, inline CSS, no network) that a person can open from CI
artefacts or the MLflow UI."""
from __future__ import annotations

import html
from collections import Counter
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from textops.files import atomic_output
from textops.plots import class_plot, histogram_plot, history_plot
from textops.monitoring.classmix import MOVED
from textops.monitoring.profile import ReferenceProfile
from textops.monitoring.result import MonitorReport
from textops.monitoring.runs import HistoryPoint
from textops.monitoring.stream import StreamTotals

STATUS_COLOURS = {"healthy": "#1a7f37", "alert": "#cf222e", "drift": "#bf8700"}


def _e(value: Any) -> str:
    return html.escape(str(value))


def _number(value: float | None) -> str:
    """A metric with 4 decimals, or a dash when it is unknown (never "nan")."""
    return "&ndash;" if value is None or not np.isfinite(value) else f"{value:.4f}"


def _words(words: Sequence[str]) -> str:
    return " ".join(f"<code>{_e(w)}</code>" for w in words) or "&ndash;"


def _drift_html(report: MonitorReport) -> str:
    """The drift table and the words typical of each side."""
    rows = []
    for check in report.drift.checks:
        value = "&ndash;" if check.value is None else f"{check.value:.3f}"
        verdict = ("skipped" if check.value is None else "DRIFT" if check.drifted else "ok")
        css = {"DRIFT": "bad", "ok": "good"}.get(verdict, "muted")
        rows.append(f"<tr><td>{_e(check.name)}</td><td>{_e(check.method)}</td>"
                    f"<td class='num'>{value}</td><td class='num'>{check.threshold:g}</td>"
                    f"<td class='{css}'>{verdict}</td><td>{_e(check.detail)}</td></tr>")
    drift_table = ("<table><tr><th>check</th><th>method</th><th>value</th><th>threshold</th>"
                   "<th>verdict</th><th>detail</th></tr>" + "".join(rows) + "</table>"
                   if rows else f"<p class='muted'>{_e(report.drift.note or 'no drift checks')}</p>")
    content = next((c for c in report.drift.checks
                    if c.name == "text_content" and c.value is not None), None)
    if not content or content.extra is None:
        return drift_table
    return drift_table + (
        "<h2>Typical words</h2><table><tr><th>more typical of the reference</th>"
        "<th>more typical of the current data</th></tr><tr>"
        f"<td>{_words(content.extra.reference_words)}</td>"
        f"<td>{_words(content.extra.current_words)}</td></tr></table>")


def _performance_html(report: MonitorReport) -> str:
    """Performance overall and per version, beside the training-time test metrics."""
    perf = report.performance
    if not perf:
        return "<h2>Performance</h2><p class='muted'>no labels in the input: drift checks only</p>"
    prow = []
    for scope, stats in [("overall", perf.overall)] + [
            (f"v{v}", s) for v, s in perf.per_version.items()]:
        # overall: the training-time metrics of the only version, when there is one
        ref = stats.reference or (perf.overall_reference if scope == "overall" else {})
        prow.append(
            f"<tr><td>{_e(scope)}</td><td class='num'>{stats.rows:,}</td>"
            f"<td class='num'>{stats.accuracy:.4f}</td><td class='num'>{stats.macro_f1:.4f}</td>"
            f"<td class='num'>{_number(ref.get('accuracy'))}</td>"
            f"<td class='num'>{_number(ref.get('macro_f1'))}</td></tr>")
    return ("<h2>Performance on labelled rows</h2><table><tr><th>scope</th><th>rows</th>"
            "<th>accuracy</th><th>macro-F1</th><th>test accuracy at training</th>"
            "<th>test macro-F1 at training</th></tr>" + "".join(prow) + "</table>")


def _estimated_html(report: MonitorReport) -> str:
    """Performance estimated from the probabilities, beside the realized figures when known."""
    est = report.estimated
    if not est:
        return ""
    realized = est.realized
    real_versions = (realized.per_version or {}) if realized else {}
    rows = []
    for scope, figures, real in [("overall", est.overall, realized)] + [
            (f"v{v}", f, real_versions.get(v)) for v, f in est.per_version.items()]:
        low, high = figures.accuracy_interval
        rows.append(
            f"<tr><td>{_e(scope)}</td><td class='num'>{figures.rows:,}</td>"
            f"<td class='num'>{figures.accuracy:.4f}</td>"
            f"<td class='num'>{low:.4f}&ndash;{high:.4f}</td>"
            f"<td class='num'>{_number(figures.macro_f1)}</td>"
            f"<td class='num'>{_number(figures.training_accuracy)}</td>"
            f"<td class='num'>{_number(real.accuracy if real else None)}</td>"
            f"<td class='num'>{_number(real.accuracy_error if real else None)}</td></tr>")
    note = f"<p class='muted'>{_e(est.note)}</p>" if est.note else ""
    trust = f"<p><strong>How far to trust it tonight:</strong> {_e(est.overall.trust)}</p>" \
        if est.overall.trust else ""
    side = "".join(
        f"<tr><td>{_e(name.upper())}</td><td class='num'>{m.accuracy:.4f}</td>"
        f"<td class='num'>{m.accuracy_interval[0]:.4f}&ndash;{m.accuracy_interval[1]:.4f}"
        f"</td><td class='num'>{_number(m.macro_f1)}</td></tr>"
        for name, m in est.overall.methods.items())
    side_html = ("<table><tr><th>estimator (overall)</th><th>accuracy</th><th>sampling interval"
                 "</th><th>macro-F1</th></tr>" + side + "</table>") if side else ""
    sample = est.sample
    sample_html = ""
    if sample:
        low, high = sample.accuracy_interval
        sample_html = (f"<p><strong>Labelled sample:</strong> accuracy {sample.accuracy:.4f} "
                       f"({low:.4f}&ndash;{high:.4f}, 90%) from {sample.labelled_rows:,} "
                       f"labelled rows of {sample.rows:,}; the label-free estimate was "
                       f"{sample.gap:+.4f} off. Alerts use the sample.</p>")
    to_label = report.to_label
    if to_label and to_label.kept:
        sample_html += (f"<p>Rows to label: <code>{_e(to_label.path)}</code> is kept as it is "
                        f"({_e(to_label.kept)}).</p>")
    elif to_label:
        sample_html += (f"<p>{to_label.rows} rows to label were written to "
                        f"<code>{_e(to_label.path)}</code> ({_e(to_label.why)}); label "
                        f"them and rerun with <code>--labels</code>.</p>")
    return (f"<h2>Estimated performance (no labels; headline: {_e(est.method_name)})</h2>"
            + trust + "<table><tr><th>scope</th><th>rows</th><th>estimated accuracy</th>"
            "<th>90% interval (honest about shift)</th><th>estimated macro-F1</th><th>test "
            "accuracy at training</th><th>realized accuracy (labelled rows)</th><th>error of the "
            "estimate there</th></tr>" + "".join(rows) + "</table>" + side_html + sample_html
            + note + _class_mix_html(est.class_mix) + "<p class='muted'>Blind to concept shift: when the same texts come to mean "
            "another label, the probabilities and so the estimate do not move; only labels "
            "catch it.</p>")


def _class_mix_html(mixes: dict[str, Any], top: int = 20) -> str:
    """Tonight's class mix against training's, per version (EM and, when known, BBSE)."""
    if not mixes:
        return ""
    parts = ["<h3>Class mix tonight (no labels: EM and BBSE label-shift estimates)</h3>"]
    for version, mix in mixes.items():
        bbse = mix.bbse or [None] * len(mix.classes)
        order = sorted(range(len(mix.classes)), key=lambda i: -abs(mix.em[i] - mix.training[i]))
        cells = "".join(
            f"<tr><td>{_e(mix.classes[i])}</td><td class='num'>{mix.training[i]:.3f}</td>"
            f"<td class='num'>{mix.em[i]:.3f}</td><td class='num'>{_number(bbse[i])}</td></tr>"
            for i in order[:top])
        parts.append(f"<p>{_e(mix.describe(version))}</p><table><tr><th>class</th><th>training"
                     f"</th><th>tonight (EM)</th><th>tonight (BBSE)</th></tr>{cells}</table>")
    return "".join(parts)


def _slices_html(report: MonitorReport) -> str:
    """--slice-by: one row per slice (empty without it)."""
    found = report.slices
    if found is None:
        return ""
    rows = []
    for s in found.slices:
        interval = (f"{s.estimated_interval[0]:.4f}&ndash;{s.estimated_interval[1]:.4f}"
                    if s.estimated_interval else "&ndash;")
        sampled = (f"{s.sample.accuracy:.4f} ({s.sample.labelled_rows:,} rows)" if s.sample
                   else "&ndash;")
        verdict = ("<span class='bad'>ALERT</span>" if s.alert else
                   "ok" if s.checked else "<span class='muted'>too few rows</span>")
        rows.append(f"<tr><td>{_e(s.value)}</td><td class='num'>{s.rows:,}</td>"
                    f"<td class='num'>{s.labelled_rows:,}</td><td class='num'>{_number(s.accuracy)}"
                    f"</td><td class='num'>{_number(s.macro_f1)}</td><td class='num'>"
                    f"{_number(s.estimated_accuracy)}</td><td class='num'>{interval}</td>"
                    f"<td class='num'>{sampled}</td><td>{verdict}</td></tr>")
    rule = (f"<p>A slice with at least {found.min_rows:,} rows alerts when its accuracy is below "
            f"{found.line:.4f} (the test accuracy at training less the allowed relative drop) "
            f"and chance cannot explain it at the level {found.level:.2g} each (5% shared by "
            f"the slices checked).</p>" if found.line is not None and found.level is not None
            else "")
    note = f"<p class='muted'>{_e(found.note)}</p>" if found.note else ""
    return (f"<h2>Slices by <code>{_e(found.column)}</code></h2>" + rule +
            "<table><tr><th>slice</th><th>rows</th><th>labelled rows</th><th>accuracy</th>"
            "<th>macro-F1</th><th>estimated accuracy (no labels)</th><th>90% interval</th>"
            "<th>labelled sample</th><th>verdict</th></tr>" + "".join(rows) + "</table>" + note)


def render(report: MonitorReport, figures: dict[str, str]) -> str:
    """The whole page. ``figures``: title -> PNG data URI."""
    status = report.status
    colour = STATUS_COLOURS.get(status, "#57606a")
    drift_table = _drift_html(report)
    perf_html = _performance_html(report)
    alerts = "".join(f"<li>{_e(a)}</li>" for a in report.all_alerts)
    images = "".join(f"<figure><img alt='{_e(t)}' src='{uri}'><figcaption>{_e(t)}</figcaption></figure>"
                     for t, uri in figures.items())
    model, data = report.model, report.data
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>textops monitor: {_e(model.name)} {_e(status)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 72rem; color: #1f2328; padding: 0 1rem; }}
.status {{ display: inline-block; padding: .3rem .8rem; border-radius: 1rem; color: #fff; background: {colour}; font-weight: 600; }}
table {{ border-collapse: collapse; margin: .5rem 0 1.5rem; width: 100%; }}
th, td {{ border-bottom: 1px solid #d0d7de; padding: .35rem .5rem; text-align: left; vertical-align: top; }}
td.num {{ text-align: right; font-variant-numeric: tabular-nums; }}
.bad {{ color: #cf222e; font-weight: 600; }} .good {{ color: #1a7f37; }} .muted {{ color: #57606a; }}
figure {{ display: inline-block; margin: 0 1rem 1rem 0; }} img {{ max-width: 100%; }}
code {{ background: #f6f8fa; padding: 0 .25rem; border-radius: .2rem; }}
</style></head>
<body data-status="{_e(status)}">
<h1>{_e(model.name)} <span class="status" id="status">{_e(status.upper())}</span></h1>
<p>Checked {_e(report.checked_at)} &middot; model versions {_e(', '.join('v' + v for v in model.versions))}
({_e(model.source)}) &middot; {data.rows:,} rows from <code>{_e(data.path)}</code>
&middot; exit code {report.exit_code}</p>
{'<h2>Alerts</h2><ul>' + alerts + '</ul>' if alerts else '<p class="good">No alerts.</p>'}
<h2>Drift</h2>
{drift_table}
{perf_html}
{_estimated_html(report)}{_slices_html(report)}
<h2>Plots</h2>
{images or "<p class='muted'>no plots</p>"}
<script>
window.addEventListener("load", function () {{
  var images = Array.prototype.slice.call(document.images);
  var decoded = images.filter(function (i) {{ return i.complete && i.naturalWidth > 0; }}).length;
  document.body.setAttribute("data-images-loaded", decoded + "/" + images.length);
}});
</script>
</body></html>
"""


def plots(report: MonitorReport, reference: ReferenceProfile | None, seen: StreamTotals,
          history: list[HistoryPoint]) -> dict[str, str]:
    """Title -> PNG data URI: reference vs current class distribution, confidence and text
    length, and the monitoring history."""
    out = {}
    if reference:
        version = report.drift.reference_version
        predicted = seen.predicted.get(version, Counter())
        total = sum(predicted.values()) or 1
        out["Predicted class distribution"] = class_plot(
            reference.predicted_distribution,
            {c: predicted.get(c, 0) / total for c in reference.classes})
        confidence = seen.confidences(version)
        if confidence:
            out["Confidence (probability of the predicted label)"] = histogram_plot(
                reference.confidence_sample, confidence, "Confidence",
                "probability of the predicted label", np.linspace(0, 1, 21))
        if seen.lengths.items:
            top = max(np.percentile(reference.length_sample, 99), 10)
            out["Text length"] = histogram_plot(
                reference.length_sample, seen.lengths.items, "Text length",
                "characters (longer texts in the last bin)", np.linspace(0, top, 31))
    if sum(1 for h in history if h.charted) >= 2:
        out["Monitoring history"] = history_plot(history)
    return out


def write_html(path: Path, report: MonitorReport, figures: dict[str, str]) -> None:
    with atomic_output(path, "w", encoding="utf-8") as handle:
        handle.write(render(report, figures))


def summary(report: MonitorReport) -> str:
    """The one line monitor.py prints: status, versions, performance, drifted checks, alerts."""
    parts = [f"{report.status.upper()}: {report.model.name} "
             + ",".join(f"v{v}" for v in report.model.versions)]
    if report.performance:
        overall = report.performance.overall
        parts.append(f"accuracy {overall.accuracy:.4f} macro-F1 {overall.macro_f1:.4f} on "
                     f"{overall.rows} labelled rows")
    estimated = report.estimated
    if estimated and estimated.sample and not report.performance:
        sample = estimated.sample
        low, high = sample.accuracy_interval
        parts.append(f"accuracy {sample.accuracy:.4f} ({low:.4f}-{high:.4f}) from "
                     f"{sample.labelled_rows} labelled sample rows of {sample.rows}")
    elif estimated and not report.performance:
        head = estimated.overall
        low, high = head.accuracy_interval
        parts.append(f"estimated accuracy {head.accuracy:.4f} ({estimated.method_abbreviation}, "
                     f"{low:.4f}-{high:.4f}) on {head.rows} rows without labels")
        if head.label_a_sample:
            parts.append(head.trust)
    if estimated:
        parts += [mix.describe(v) for v, mix in estimated.class_mix.items()
                  if mix.moved > MOVED or mix.flagged]
    checks = report.drift.checks
    if checks:
        parts.append("drift in " + (", ".join(c.name for c in checks if c.drifted) or "none")
                     + f" of {sum(c.value is not None for c in checks)} checks")
    if report.slices is not None and not report.slices.alerts:
        checked = sum(1 for s in report.slices.slices if s.checked)
        parts.append(f"{checked} slice(s) by {report.slices.column} checked: none dropped")
    parts += report.alerts
    return "; ".join(parts)
