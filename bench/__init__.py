"""Benchmarks of the product's real parts, run on a stack of their own: `make bench`.

`python -m bench` measures the gateway's Kafka request/reply path (see bench.request_reply) and
writes its numbers to bench/results/.
"""
