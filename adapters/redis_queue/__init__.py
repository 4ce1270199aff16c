"""Completion jobs over Redis Streams: a backend for gateways, and the worker that serves it."""
