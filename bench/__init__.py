"""Benchmarks: scripts that print tables of measured speed and quality."""
