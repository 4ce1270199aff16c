"""LangChain's ChatOpenAI pointed at the proxy."""

from langchain_openai import ChatOpenAI

from _env import API_KEY, BASE_URL

llm = ChatOpenAI(model="gpt-4o-mini", base_url=BASE_URL, api_key=API_KEY)
print(llm.invoke("Say hello in French.").content)
for chunk in llm.stream("Say goodbye in Spanish."):
    print(chunk.content, end="", flush=True)
print()
