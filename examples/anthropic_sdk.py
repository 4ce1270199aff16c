"""Anthropic's Messages API with the official `anthropic` SDK: a message, a streamed answer and
a token count, on the same project key as the OpenAI routes."""

from anthropic import Anthropic

from _env import API_KEY, BASE_URL

# The Anthropic SDK adds /v1 itself.
client = Anthropic(base_url=BASE_URL.removesuffix("/v1"), api_key=API_KEY)

message = client.messages.create(
    model="claude-sonnet-5-5",  # or haiku, sonnet, opus, or an alias the operator configured
    max_tokens=512,
    system="Answer in one sentence.",
    messages=[{"role": "user", "content": "What does a reverse proxy do?"}],
)
print(message.content[0].text)
print("stop:", message.stop_reason, "tokens:", message.usage.input_tokens, "+", message.usage.output_tokens)

with client.messages.stream(
    model="haiku", max_tokens=256, messages=[{"role": "user", "content": "Name two HTTP status codes."}]
) as stream:
    for text in stream.text_stream:
        print(text, end="", flush=True)
    print()

counted = client.messages.count_tokens(model="haiku", messages=[{"role": "user", "content": "How long is this?"}])
print("input tokens:", counted.input_tokens)
