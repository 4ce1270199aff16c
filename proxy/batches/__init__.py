"""The OpenAI Files and Batches APIs: stored files, durable batches run through the CLI pool."""
