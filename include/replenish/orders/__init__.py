"""Ordering: calendar -> proposals -> order_tables (persistence) -> release -> outbox/dispatcher -> channels."""

from replenish.orders.stages import dispatch, propose, release

__all__ = ["dispatch", "propose", "release"]
