"""Ordering: calendar -> proposals -> store -> release -> outbox/dispatcher -> channels."""

from replenish.orders.stages import dispatch, propose, release

__all__ = ["dispatch", "propose", "release"]
