"""Order transmission channels behind one interface (see base.Channel), and the factory of the configured ones."""

from __future__ import annotations

from typing import TYPE_CHECKING

from replenish.orders.channels.base import Channel, ChannelError
from replenish.orders.channels.edifact import EdifactChannel, render_orders_d96a
from replenish.orders.channels.email import EmailChannel
from replenish.orders.channels.supplier_api import SupplierApiChannel

if TYPE_CHECKING:
    from replenish.settings import Settings

__all__ = ["Channel", "ChannelError", "EdifactChannel", "EmailChannel", "SupplierApiChannel", "default_channels",
           "render_orders_d96a"]


def default_channels(settings: Settings | None = None) -> dict[str, Channel]:
    """The channels orders go out through, by the name an order's ``channel`` holds (settings: the SendGrid key
    or the outbox folder for e-mail, the EDIFACT outbound folder)."""
    from replenish.settings import get_settings

    s = settings or get_settings()
    return {
        "email": EmailChannel.from_settings(s),
        "api": SupplierApiChannel(),
        "edifact": EdifactChannel(s.edi_outbound_dir),
    }
