"""Structured output: the answer is JSON that matches the schema, parsed into a pydantic model."""

from openai import OpenAI
from pydantic import BaseModel

from _env import API_KEY, BASE_URL


class Person(BaseModel):
    name: str
    age: int


client = OpenAI(base_url=BASE_URL, api_key=API_KEY)
result = client.beta.chat.completions.parse(
    model="gpt-4o",
    messages=[{"role": "user", "content": "Extract the person: Jane Roe is 31 years old."}],
    response_format=Person,
)
print(result.choices[0].message.parsed)
