"""``status``: what the engine holds, how its index stands, and how its jobs last ran."""
