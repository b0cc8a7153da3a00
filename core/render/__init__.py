"""Pictures for people: collages of similar tokens."""
