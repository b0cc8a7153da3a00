"""Pricing: point-in-time features, the price model, its evaluation, and ``value``."""
