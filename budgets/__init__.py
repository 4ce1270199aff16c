"""Per-project keys, budgets, rate limits and the usage ledger (SQLite via sqlite-utils).

Filled in by the keys-and-budgets issue; the request path already leaves room for it.
"""
