"""LlamaIndex's OpenAILike, which calls the legacy /v1/completions by default."""

from llama_index.llms.openai_like import OpenAILike

from _env import API_KEY, BASE_URL

llm = OpenAILike(model="gpt-4o-mini", api_base=BASE_URL, api_key=API_KEY)
print(llm.complete("Complete the phrase: the quick brown fox").text)
