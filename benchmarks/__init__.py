"""Translation throughput and server overhead: ``python -m benchmarks``."""
