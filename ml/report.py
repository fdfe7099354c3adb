"""Self-contained HTML forecast report (matplotlib PNGs embedded as base64), rendered from frames: the run's
report reads them from the warehouse in ``replenish.forecasting.report``."""

from __future__ import annotations

import base64
import html
import io


def png_img(fig) -> str:
    """The figure as an inline <img> (a data: URL): the reports are single self-contained HTML files."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return f'<img src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}"/>'


LOOKBACK_DAYS = 28
# a store that sold nothing where its forecasts of the day expected this many units was closed (the accuracy mart)
CLOSED_STORE_P50 = 10
NO_MATURED = ("No matured forecasts yet: accuracy tracking starts once forecasts mature, i.e. once earlier "
              "origins' target dates fall on or before the business date.")


def _fmt(v) -> str:
    if v is None or (isinstance(v, float) and v != v):
        return "-"
    if isinstance(v, float):
        return f"{v:.3f}"
    return html.escape(str(v))


def _json(v):
    """A jsonb column as the driver gave it (dict), or its text parsed; text that is not JSON stays text."""
    import json

    if isinstance(v, str):
        try:
            return json.loads(v)
        except ValueError:
            return v
    return v


def intervals_text(feature_config: dict | None, calibration: dict | None) -> str:
    """How the model's P10/P90 reach the forecasts (ml.calibration.why_not_applied, as the model decides)."""
    from ml.calibration import why_not_applied

    # a config stored before the option existed loads with it off (ml.model._stored_config)
    reason = why_not_applied(bool((feature_config or {}).get("apply_interval_calibration", False)), calibration)
    if reason is None:
        assert calibration is not None
        return f"calibrated on the backtest ({calibration.get('n_rows', '?')} residuals, per series group and horizon)"
    if reason == "not_representative":
        share = (calibration or {}).get("backtest_train_share")
        seen = f" ({share:.0%} of the final model's training origins)" if isinstance(share, (int, float)) else ""
        return f"raw quantiles: the backtest model saw too little history{seen}; calibration stored, not applied"
    return {"none_stored": "raw quantiles (no calibration stored)",
            "option_off": "raw quantiles (apply_interval_calibration off; calibration stored)"}[reason]


def _models_html(models) -> str:
    if models is None or len(models) == 0:
        return "<p>No current model in forecast.models (forecasts come from the item-profile fallback).</p>"
    cur = models[models["is_current"].astype(bool)] if "is_current" in models else models
    if len(cur) == 0:
        return "<p>No current model in forecast.models (forecasts come from the item-profile fallback).</p>"
    out = []
    for _, r in cur.iterrows():
        fields = [(c, r[c]) for c in ("version", "created_at", "train_start", "train_end", "backtest_wape",
                                      "artifact_path") if c in r.index]
        bm = _json(r.get("backtest_metrics"))
        if isinstance(bm, dict):
            fields += [(f"backtest {k}", v) for k, v in bm.items() if not isinstance(v, (dict, list))]
        elif bm is not None:
            fields.append(("backtest_metrics", bm))
        if "calibration" in r.index:
            cfg, cal = _json(r.get("feature_config")), _json(r.get("calibration"))
            fields.append(("intervals", intervals_text(cfg if isinstance(cfg, dict) else None,
                                                       cal if isinstance(cal, dict) else None)))
        out.append("<table border='1' cellspacing='0' cellpadding='3'>" +
                   "".join(f"<tr><th align='left'>{html.escape(str(k))}</th><td>{_fmt(v)}</td></tr>"
                           for k, v in fields) + "</table>")
    return "".join(out)


def run_report_html(business_date, forecasts, actuals, models, n_series: int = 4, generated_at=None,
                    verdict: dict | None = None, scores=None) -> str:
    """The nightly HTML report for the forecasts of origin ``business_date`` (self-contained, PNGs base64-embedded).

    ``forecasts``: rows of ``forecast.forecasts`` (the new origin and earlier origins whose targets fall in the
    LOOKBACK_DAYS up to ``business_date``); ``actuals``: ``marts.fct_daily_demand`` rows (store_id, item_id,
    demand_date, units_sold, is_stockout) of those days; ``models``: the current model's row of ``forecast.models``
    (None or empty: none). Accuracy counts a sold-out day at its sales (a lower bound of its demand). ``verdict``:
    the status and drift reasons of ``replenish accuracy`` (replenish.forecasting.accuracy), shown above the
    figures. ``scores``: the matured forecasts' sums (:func:`score_sums`' columns) as the warehouse scored them;
    None: scored here from ``forecasts`` and ``actuals``, which then need every earlier origin's rows."""
    import datetime as dt

    import matplotlib

    matplotlib.use("Agg")
    import pandas as pd

    bd = pd.Timestamp(business_date).normalize()
    start = bd - pd.Timedelta(days=LOOKBACK_DAYS - 1)
    # the earlier origins are a month of every series at chain size (~12 M rows): one frame of the columns scored,
    # filtered without copying the whole input first
    fc = forecasts.assign(origin_date=pd.to_datetime(forecasts["origin_date"]),
                          target_date=pd.to_datetime(forecasts["target_date"]))
    act = actuals.copy()
    act["demand_date"] = pd.to_datetime(act["demand_date"])
    act = act[(act["demand_date"] >= start) & (act["demand_date"] <= bd)]
    act["is_stockout"] = act["is_stockout"].eq(True)
    new = fc[fc["origin_date"] == bd].sort_values(["store_id", "item_id", "horizon"])
    old = fc.loc[(fc["origin_date"] < bd) & (fc["target_date"] <= bd) & (fc["target_date"] >= start),
                 ["store_id", "item_id", "origin_date", "target_date", "horizon", "p10", "p50", "p90"]]
    del fc
    if scores is None:
        scores = score_sums(old, act)

    title = f"Replenish nightly forecast report - {bd.date()}"
    parts = [f"<h1>{html.escape(title)}</h1>", _header_html(bd, new, generated_at or dt.datetime.now(dt.UTC)),
             _series_html(bd, act, new, old, n_series), _accuracy_html(bd, start, scores, verdict),
             "<h2>Current model (forecast.models)</h2>" + _models_html(models)]
    return ("<!doctype html><html><head><meta charset='utf-8'><title>" + html.escape(title) +
            "</title></head><body style='font-family:sans-serif'>" + "".join(parts) + "</body></html>")


def _header_html(bd, new, generated_at) -> str:
    """The run's facts (origin, model versions, rows, flags, run ids) and the warning the flags call for."""
    import pandas as pd

    versions = sorted({("none (item-profile fallback)" if v is None or v != v else str(v))
                       for v in new.get("model_version", pd.Series(dtype=object))})
    n_flag = int(new["is_flagged"].astype(bool).sum()) if len(new) else 0
    n_fb = int(new["model_version"].isna().sum()) if len(new) else 0
    n_keys = len(new[["store_id", "item_id"]].drop_duplicates())
    parts = ["<table border='1' cellspacing='0' cellpadding='3'>"]
    head = [("Business date (forecast origin)", bd.date()),
            ("Model version(s) used", ", ".join(versions) if versions else "-"),
            ("Forecast rows", f"{len(new)} ({n_keys} store x items, horizons "
                              f"{int(new['horizon'].min()) if len(new) else '-'}.."
                              f"{int(new['horizon'].max()) if len(new) else '-'})"),
            ("Flagged rows (quality gate blocked or fallback)",
             f"{n_flag} of {len(new)}" + (f" ({n_fb} from the fallback, no model version)" if n_fb else "")),
            ("Run id(s)", ", ".join(sorted({str(r) for r in new.get("run_id", pd.Series(dtype=object)).dropna()}))
             or "-"),
            ("Generated at", f"{generated_at:%Y-%m-%d %H:%M:%S %Z}".strip())]
    parts += [f"<tr><th align='left'>{html.escape(k)}</th><td>{_fmt(v)}</td></tr>" for k, v in head]
    parts.append("</table>")
    if len(new) == 0:
        parts.append(f"<p><b>No forecasts found in forecast.forecasts for origin {bd.date()}.</b></p>")
    elif n_flag:
        parts.append("<p><b>Flagged forecasts must be reviewed before automatic ordering uses them.</b></p>")
    return "".join(parts)


def _series_html(bd, act, new, old, n_series: int) -> str:
    """The largest store x items by volume over the look-back window: their actuals, the new forecast's band and
    the earlier origins' h=1 P50, one plot each, and a table (empty without actuals or forecasts)."""
    import matplotlib.pyplot as plt
    import pandas as pd

    vol = act.groupby(["store_id", "item_id"], as_index=False)["units_sold"].sum()
    if len(new):
        vol = vol.merge(new[["store_id", "item_id"]].drop_duplicates(), how="right", on=["store_id", "item_id"])
    series = vol.fillna({"units_sold": 0}).sort_values("units_sold", ascending=False, kind="stable").head(n_series)
    if not len(series):
        return ""
    fig, axes = plt.subplots(len(series), 1, figsize=(11, 2.8 * len(series)), squeeze=False)
    for ax, s in zip(axes[:, 0], series.itertuples(), strict=False):
        a = act[(act["store_id"] == s.store_id) & (act["item_id"] == s.item_id)].sort_values("demand_date")
        f = new[(new["store_id"] == s.store_id) & (new["item_id"] == s.item_id)].sort_values("target_date")
        h1 = old[(old["store_id"] == s.store_id) & (old["item_id"] == s.item_id) & (old["horizon"] == 1)]
        h1 = h1.sort_values("target_date")
        ax.plot(a["demand_date"], a["units_sold"], "k.-", lw=1, ms=4, label="actual sales")
        so = a[a["is_stockout"]]
        if len(so):
            ax.plot(so["demand_date"], so["units_sold"], "rx", ms=7, mew=2, label="stock-out (censored)")
        if len(h1):
            ax.plot(h1["target_date"], h1["p50"], "--", color="tab:orange", lw=1.2,
                    label="earlier origins h=1 P50")
        if len(f):
            ax.fill_between(f["target_date"], f["p10"], f["p90"], color="tab:blue", alpha=0.25,
                            label="P10-P90")
            ax.plot(f["target_date"], f["p50"], color="tab:blue", lw=1.5, label="P50 (new origin)")
        ax.axvline(bd, color="grey", ls=":", lw=1)
        flag = " [flagged]" if len(f) and f["is_flagged"].astype(bool).any() else ""
        ax.set_title(f"store {s.store_id} item {s.item_id} - last {LOOKBACK_DAYS} days sold "
                     f"{s.units_sold:,.0f}{flag}", fontsize=9)
        ax.set_ylim(bottom=0)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=7, loc="upper left", ncol=3)
    fig.autofmt_xdate()
    rows = []
    for s in series.itertuples():
        a = act[(act["store_id"] == s.store_id) & (act["item_id"] == s.item_id)]
        f = new[(new["store_id"] == s.store_id) & (new["item_id"] == s.item_id)]
        rows.append({"store_id": s.store_id, "item_id": s.item_id, f"units sold (last {LOOKBACK_DAYS} d)":
                     s.units_sold, "stock-out days": int(a["is_stockout"].sum()),
                     "P50 next 7 d": float(f.loc[f["horizon"] <= 7, "p50"].sum()) if len(f) else None,
                     "flagged": bool(f["is_flagged"].astype(bool).any()) if len(f) else None})
    return (f"<h2>Largest {len(series)} store x items: last {LOOKBACK_DAYS} days and the forecast</h2>"
            "<p>Black: actual sales (red x = stock-out day, sales understate demand). Blue: P50 and "
            f"P10-P90 band from origin {bd.date()}. Orange dashed: h=1 P50 of earlier origins, where "
            "they exist.</p>" + pd.DataFrame(rows).to_html(index=False, float_format="%.1f") + png_img(fig))  # type: ignore[call-overload]  # pandas takes a format string


def _verdict_html(verdict: dict | None) -> str:
    """The drift verdict of the forecasts met so far (``replenish accuracy``), in words."""
    if not verdict:
        return ""
    reasons = verdict.get("drift") or []
    head = (f"<p><b>Verdict (replenish accuracy, target dates in the {html.escape(str(verdict.get('days', '')))} "
            f"days up to {html.escape(str(verdict.get('business_date', '')))}): "
            f"{html.escape(str(verdict.get('status', '')))}</b></p>")
    return head + ("<ul>" + "".join(f"<li>{html.escape(str(r))}</li>" for r in reasons) + "</ul>" if reasons else "")


# the figures of a group of matured forecasts are ratios of these sums, so the warehouse adds them up in SQL
# (replenish.forecasting.report) and a frame of forecasts adds them up here, alike
SCORE_SUMS = ("n", "sum_y", "sum_p50", "sum_abs_err", "sum_pinball", "n_covered", "n_censored")
_QUANTILES = ((0.1, "p10"), (0.5, "p50"), (0.9, "p90"))


def score_sums(old, act):
    """The matured forecasts ``old`` (earlier origins, targets in the look-back window) against the sales ``act``:
    one row pooled (``grouping`` "all"), one per horizon and one per store, with SCORE_SUMS, the forecasts of days a
    store was closed (``n_closed``, left out of the rest) and the first and last origin scored. A sold-out day
    counts at its sales, a lower bound of its demand: left out, only the days that did not sell out, the low ones,
    would be scored (a 1-day item ordered at its P70 would read ~10 % over-forecast). A store that sold nothing
    where its forecasts of the origin expected at least CLOSED_STORE_P50 units was closed, not mis-forecast: the
    rule of marts.fct_forecast_accuracy, whose sums the nightly report reads instead of this."""
    import numpy as np
    import pandas as pd

    j = old.merge(act.rename(columns={"demand_date": "target_date"}), on=["store_id", "item_id", "target_date"],
                  how="inner")
    j = j[j["units_sold"].notna()]
    day = j.groupby(["store_id", "origin_date", "target_date"])
    closed = day["units_sold"].transform("sum").eq(0) & day["p50"].transform("sum").ge(CLOSED_STORE_P50)
    n_closed = int(closed.sum())
    j = j[~closed]
    y = j["units_sold"].to_numpy(float)
    pin = np.zeros(len(j))
    for q, c in _QUANTILES:
        e = y - j[c].to_numpy(float)
        pin += np.maximum(q * e, (q - 1) * e)
    s = pd.DataFrame({"horizon": j["horizon"].to_numpy(), "store_id": j["store_id"].to_numpy(), "n": 1, "sum_y": y,
                      "sum_p50": j["p50"].to_numpy(float), "sum_abs_err": np.abs(y - j["p50"].to_numpy(float)),
                      "sum_pinball": pin, "n_covered": ((y >= j["p10"]) & (y <= j["p90"])).to_numpy(int),
                      "n_censored": j["is_stockout"].eq(True).to_numpy(int)})
    cols = list(SCORE_SUMS)
    pooled = s[cols].sum().to_frame().T.assign(grouping="all", key=None, n_closed=n_closed,
                                              first_origin=j["origin_date"].min() if len(j) else None,
                                              last_origin=j["origin_date"].max() if len(j) else None)
    parts = [pooled] + [s.groupby(g, as_index=False)[cols].sum().rename(columns={g: "key"}).assign(grouping=g)
                        for g in ("horizon", "store_id")]
    return pd.concat(parts, ignore_index=True)


def _figures(sums):
    """WAPE, bias, P10-P90 coverage and mean scaled pinball loss from the sums (ml.backtest.metrics' definitions)."""
    import numpy as np

    sy = sums["sum_y"].astype(float).replace(0, np.nan)
    return sums.assign(n=sums["n"].astype(int), wape=sums["sum_abs_err"] / sy,
                       bias=(sums["sum_p50"] - sums["sum_y"]) / sy,
                       coverage=sums["n_covered"] / sums["n"].astype(float).replace(0, np.nan),
                       pinball=sums["sum_pinball"] / 3 / sy)


def _accuracy_html(bd, start, scores, verdict: dict | None = None) -> str:
    """Accuracy of the matured forecasts (earlier origins, targets in the look-back window), sold-out days at their
    sales, from their sums (:func:`score_sums`): pooled, and by horizon and by store as plots and tables."""
    parts = [f"<h2>Accuracy of matured forecasts (targets {start.date()} .. {bd.date()})</h2>", _verdict_html(verdict)]
    pooled = scores[scores["grouping"] == "all"]
    if not len(pooled) or not int(pooled["n"].iloc[0]) or float(pooled["sum_y"].iloc[0]) <= 0:
        parts.append(f"<p>{html.escape(NO_MATURED)}</p>")
        return "".join(parts)
    p = _figures(pooled).iloc[0]
    first, last = (_date_text(p[c]) for c in ("first_origin", "last_origin"))
    parts.append("<p>Pooled: " + ", ".join(f"{k} {_fmt(v)}" for k, v in (
                 ("n", int(p["n"])), ("wape", float(p["wape"])), ("bias", float(p["bias"])),
                 ("coverage", float(p["coverage"])), ("pinball", float(p["pinball"])))) +
                 f". Earlier origins {first} .. {last}; {int(p['n_closed'])} forecast(s) of a day the store was "
                 f"closed left out; {int(p['n_censored'])} sold-out target day(s) counted at their "
                 "sales, which understate their demand (`replenish accuracy` gives the coverage as a range and "
                 "names any drift against the model's backtest). WAPE = sum|y-P50|/sum y; bias = "
                 "(sum P50 - sum y)/sum y; coverage = share of actuals inside P10-P90 (nominal 0.80).</p>")
    shown = ["n", "wape", "bias", "coverage", "pinball"]
    bh = _figures(scores[scores["grouping"] == "horizon"]).rename(columns={"key": "horizon"})
    bs = _figures(scores[scores["grouping"] == "store_id"]).rename(columns={"key": "store_id"})
    bh = bh.astype({"horizon": int}).sort_values("horizon")[["horizon", *shown]]
    bs = bs.astype({"store_id": int}).sort_values("store_id")[["store_id", *shown]]
    parts.append(_metric_bars(bh["horizon"], bh, "horizon", "tab:blue"))
    parts.append(_metric_bars(bs["store_id"].astype(str), bs, "store", "tab:green"))
    parts.append("<h3>By horizon</h3>" + bh.to_html(index=False, float_format="%.3f"))  # type: ignore[call-overload]  # pandas takes a format string
    parts.append("<h3>By store</h3>" + bs.to_html(index=False, float_format="%.3f"))  # type: ignore[call-overload]  # pandas takes a format string
    return "".join(parts)


def _date_text(v) -> str:
    import pandas as pd

    return "-" if v is None or v is pd.NaT or (isinstance(v, float) and v != v) else str(pd.Timestamp(v).date())


def _metric_bars(xs, by, name: str, color: str) -> str:
    """WAPE, bias and P10-P90 coverage of each group of ``by`` as three bar charts (the nominal 0.80 marked)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 3, figsize=(12, 3))
    for k, (col, ttl) in enumerate((("wape", "WAPE"), ("bias", "bias"), ("coverage", "P10-P90 coverage"))):
        if col in by:
            ax[k].bar(xs, by[col], color=color)
        ax[k].set_title(f"{ttl} by {name}", fontsize=9)
        if name == "horizon":
            ax[k].set_xlabel("horizon (days)", fontsize=8)
        else:
            ax[k].tick_params(axis="x", labelsize=7, rotation=90)
    ax[1].axhline(0, color="k", lw=0.8)
    ax[2].axhline(0.8, color="r", ls="--", lw=1)
    ax[2].set_ylim(0, 1)
    return png_img(fig)
