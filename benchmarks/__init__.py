"""Benchmarks of the product, outside it: what ``replenish bench ...`` and ``make bench*`` run (docs/benchmarks.md).

Forecast accuracy (``forecast``), interval calibration (``calibration``), time and memory at scale
(``forecast_scale``), the proposal maths (``proposals``), the end-to-end nightly (``pipeline``), the history load
(``extract``) and the ordering platform under load (``web``), with the synthetic data they run on
(``synthetic_panel``: a neutral-frame panel of M5 size; ``synthetic_chain``: a retailer of any size under the export
contract). The measurement protocol: docs/benchmark-protocol.md.
"""
