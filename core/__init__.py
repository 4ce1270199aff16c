"""What every layer shares: the error tree, neutral types, token counting, the Redis connection.

`core` imports nothing of `proxy`, `budgets` or `adapters`; they all import it (see
`tests/unit/test_layers.py`).
"""
