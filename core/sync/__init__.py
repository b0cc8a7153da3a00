"""Marketplace sync: OpenSea and Magic Eden clients, checkpoints, scheduled refresh."""
