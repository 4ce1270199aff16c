"""The Responses API with the official OpenAI SDK: a response, a follow-up that continues it by
`previous_response_id`, and a streamed answer."""

from openai import OpenAI

from _env import API_KEY, BASE_URL

client = OpenAI(base_url=BASE_URL, api_key=API_KEY)

first = client.responses.create(
    model="gpt-4o-mini",
    instructions="Answer in one sentence.",
    input="What is a reverse proxy?",
)
print(first.output_text)

# The server keeps the response (store defaults to true): the next request continues it.
follow_up = client.responses.create(
    model="gpt-4o-mini",
    previous_response_id=first.id,
    input="And a forward proxy?",
)
print(follow_up.output_text)

with client.responses.stream(model="gpt-4o-mini", input="Name three HTTP methods.") as stream:
    for event in stream:
        if event.type == "response.output_text.delta":
            print(event.delta, end="", flush=True)
    print()
    print("tokens:", stream.get_final_response().usage.total_tokens)
