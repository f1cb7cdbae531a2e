"""Writes of the segments app: segments and their refresh, rule-made tags, shipped templates."""
