"""Closed-loop replenishment simulator: what automatic ordering would have done on the real bakery demand.

See docs/simulator.md. Entry point: :func:`replenish.simulate.runner.run_simulation`.
"""
