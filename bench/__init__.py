"""Benchmarks of the product's real parts, run on a stack of their own: `make bench`.

`python -m bench` measures the gateway's Kafka request/reply path (bench.request_reply) and
`POST /api/ai-assistant/intent` against issue 3's targets (bench.intent), and writes their numbers
to bench/results/; `--only request-reply|intent` runs one of them (see bench.run).
"""
