"""Thin chat front ends over the engine: Telegram, Discord and a local console."""
