"""The forecaster's side of the warehouse: reads the marts into ``ml``'s neutral frame, trains and registers models
(``forecast.models``, artifacts in ``Settings.models_dir``), writes the nightly forecasts and the run's report.

``ml`` holds the pure forecasting code (features, model, calibration, metrics) and never touches the database or
the settings; this package is where the two meet.
"""
