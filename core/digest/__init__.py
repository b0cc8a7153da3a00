"""Cluster digests: the visual groups of a collection, what each sells for, which move."""
