"""A chat completion with the official OpenAI SDK."""

from openai import OpenAI

from _env import API_KEY, BASE_URL

client = OpenAI(base_url=BASE_URL, api_key=API_KEY)
reply = client.chat.completions.create(
    model="gpt-4o-mini",
    messages=[
        {"role": "system", "content": "Answer in one sentence."},
        {"role": "user", "content": "What is a proxy server?"},
    ],
)
print(reply.choices[0].message.content)
print("tokens:", reply.usage.total_tokens)
