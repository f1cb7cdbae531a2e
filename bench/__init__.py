"""Benchmarks of Yunying's heavy paths against PostgreSQL: `make bench` or `python -m bench`.

Each benchmark is one function in the registry of bench/__main__.py; they share one freshly
migrated database per run (bench/database.py) and generated data (bench/generate.py).
"""
