"""Order transmission channels behind one interface (see base.Channel)."""

from replenish.orders.channels.base import Channel, ChannelError
from replenish.orders.channels.edifact import EdifactChannel, render_orders_d96a
from replenish.orders.channels.email import EmailChannel
from replenish.orders.channels.supplier_api import SupplierApiChannel

__all__ = ["Channel", "ChannelError", "EdifactChannel", "EmailChannel", "SupplierApiChannel", "render_orders_d96a"]
