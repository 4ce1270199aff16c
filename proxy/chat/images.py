"""Image parts: `data:` URLs become image blocks; `http(s)` URLs are fetched when allowed."""

from __future__ import annotations

import asyncio
import base64
import binascii

import httpx

from core.errors import InvalidRequest
from core.types import ImageBlock, ImageSource
from proxy.settings import ImageSettings
from proxy.wire.chat_request import ChatCompletionRequest, ImagePart

MEDIA_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp")


def image_block(url: str, param: str, *, max_bytes: int) -> ImageBlock:
    """An image block from a `data:image/...;base64,...` URL; anything else is a 400."""
    if not url.startswith("data:"):
        raise InvalidRequest(
            "Image URLs are not fetched by this server; send the image as a data: URL "
            "(or have the operator set images.fetch).",
            param=param,
            code="image_url_not_allowed",
        )
    header, _, payload = url[5:].partition(",")
    media_type, _, encoding = header.partition(";")
    if media_type not in MEDIA_TYPES or encoding != "base64":
        raise InvalidRequest(
            f"Images must be base64 data: URLs of type {', '.join(MEDIA_TYPES)}.", param=param, code="invalid_image"
        )
    try:
        raw = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequest("The image's base64 data does not decode.", param=param, code="invalid_image") from None
    if len(raw) > max_bytes:
        raise InvalidRequest(f"Images may be at most {max_bytes} bytes.", param=param, code="image_too_large")
    return ImageBlock(ImageSource(media_type=media_type, data=payload))


async def fetch_images(request: ChatCompletionRequest, settings: ImageSettings) -> dict[str, str]:
    """Fetches every http(s) image URL of the request (when allowed); returns each URL's
    `data:` URL. The request itself is left as it came."""
    urls = []
    for i, message in enumerate(request.messages):
        parts = getattr(message, "content", None)
        if isinstance(parts, list):
            urls += [
                (part.image_url.url, f"messages[{i}].content[{j}].image_url.url")
                for j, part in enumerate(parts)
                if isinstance(part, ImagePart)
            ]
    return await fetch_image_urls(urls, settings)


async def fetch_image_urls(urls: list[tuple[str, str]], settings: ImageSettings) -> dict[str, str]:
    """Fetches the http(s) ones of `urls` ((url, param) pairs) when the operator allows;
    returns each fetched URL's `data:` URL. Other URLs are left to `image_block`."""
    fetched: dict[str, str] = {}
    wanted = [(url, param) for url, param in urls if url.startswith(("http://", "https://"))]
    if not settings.fetch or not wanted:
        return fetched
    async with httpx.AsyncClient(timeout=settings.timeout_s, follow_redirects=True, max_redirects=3) as client:
        for url, param in wanted:
            if url in fetched:
                continue
            try:
                fetched[url] = await asyncio.wait_for(
                    _fetch(client, url, param, settings.max_bytes), timeout=settings.timeout_s
                )
            except TimeoutError:
                raise InvalidRequest(
                    f"Fetching the image took longer than {settings.timeout_s:g}s.",
                    param=param,
                    code="image_fetch_failed",
                ) from None
    return fetched


async def _fetch(client: httpx.AsyncClient, url: str, param: str, max_bytes: int) -> str:
    try:
        async with client.stream("GET", url) as response:
            if response.status_code != 200:
                raise InvalidRequest(
                    f"Fetching the image gave HTTP {response.status_code}.", param=param, code="image_fetch_failed"
                )
            media_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
            if media_type not in MEDIA_TYPES:
                raise InvalidRequest(
                    f"The URL is not an image ({media_type or 'no content type'}).", param=param, code="invalid_image"
                )
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > max_bytes:
                    raise InvalidRequest(
                        f"Images may be at most {max_bytes} bytes.", param=param, code="image_too_large"
                    )
    except httpx.HTTPError as exc:
        raise InvalidRequest(f"The image could not be fetched: {exc}", param=param, code="image_fetch_failed") from exc
    return f"data:{media_type};base64,{base64.b64encode(bytes(body)).decode()}"
