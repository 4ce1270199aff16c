"""Streaming, token by token, with usage at the end."""

from openai import OpenAI

from _env import API_KEY, BASE_URL

client = OpenAI(base_url=BASE_URL, api_key=API_KEY)
stream = client.chat.completions.create(
    model="gpt-4o",
    messages=[{"role": "user", "content": "Count from one to five."}],
    stream=True,
    stream_options={"include_usage": True},
)
for chunk in stream:
    if chunk.choices:
        print(chunk.choices[0].delta.content or "", end="", flush=True)
    elif chunk.usage:
        print("\ntokens:", chunk.usage.total_tokens)
