"""Function calling: the model asks for a tool, this script runs it, and the answer uses its result.

The tool runs here, in the caller's program, never on the proxy's host: the proxy only carries
the call and the result between this script and Claude.
"""

import json

from openai import OpenAI

from _env import API_KEY, BASE_URL

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather for a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
    }
]


def get_weather(city: str) -> str:
    return {"Paris": "18°C and sunny"}.get(city, "unknown")


client = OpenAI(base_url=BASE_URL, api_key=API_KEY)
messages = [{"role": "user", "content": "What is the weather in Paris right now?"}]
while True:
    reply = client.chat.completions.create(model="gpt-4o", messages=messages, tools=TOOLS)
    message = reply.choices[0].message
    if reply.choices[0].finish_reason != "tool_calls":
        print(message.content)
        break
    messages.append(message.model_dump(exclude_none=True))
    for call in message.tool_calls:
        result = get_weather(**json.loads(call.function.arguments))
        print(f"tool {call.function.name}({call.function.arguments}) -> {result}")
        messages.append({"role": "tool", "tool_call_id": call.id, "content": result})
