"""Chat completions: validation, translation to a backend job, running choices, rendering."""
