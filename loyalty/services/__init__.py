"""Writes to loyalty data: tiers and memberships (tiers.py, memberships.py), points."""
