"""``value``: what a token is worth, for now read straight from the sales the engine holds."""

from core.valuation.sales import SALES_ONLY_NOTE, SalesValue, SalesValuer, value_from_sales

__all__ = [
    "SALES_ONLY_NOTE",
    "SalesValue",
    "SalesValuer",
    "value_from_sales",
]
