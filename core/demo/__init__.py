"""``python -m core demo``: the whole flow on a sample collection generated on the spot."""
