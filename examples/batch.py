"""The Batches API: upload a JSONL file, create a batch, wait, read the output file."""

import io
import json
import time

from openai import OpenAI

from _env import API_KEY, BASE_URL

client = OpenAI(base_url=BASE_URL, api_key=API_KEY)
lines = [
    {
        "custom_id": f"question-{i}",
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": question}]},
    }
    for i, question in enumerate(["Name a prime number.", "Name a colour."])
]
source = client.files.create(
    file=("questions.jsonl", io.BytesIO("\n".join(map(json.dumps, lines)).encode())), purpose="batch"
)
batch = client.batches.create(input_file_id=source.id, endpoint="/v1/chat/completions", completion_window="24h")
while batch.status not in ("completed", "failed", "expired", "cancelled"):
    time.sleep(1)
    batch = client.batches.retrieve(batch.id)
print("status:", batch.status, batch.request_counts)
if batch.output_file_id:
    for line in client.files.content(batch.output_file_id).text.splitlines():
        item = json.loads(line)
        print(item["custom_id"], "->", item["response"]["body"]["choices"][0]["message"]["content"])
