"""OpenAI's Responses API: translation to the pipeline, rendering, and stored responses."""
