"""The official OpenAI clients, sync (run in a thread) and async, called alike from async tests."""

from __future__ import annotations

import asyncio
from typing import Any

import openai
from openai.types.chat import ChatCompletion, ChatCompletionChunk

__all__ = ["SDK"]


class SDK:
    """One of the two official clients, chosen by ``kind`` (``"sync"`` or ``"async"``)."""

    def __init__(self, kind: str, base_url: str, api_key: str = "unused") -> None:
        self.kind = kind
        self.sync = openai.OpenAI(base_url=base_url, api_key=api_key, max_retries=0)
        self.async_ = openai.AsyncOpenAI(base_url=base_url, api_key=api_key, max_retries=0)

    async def call(self, path: str, *args: Any, **kwargs: Any) -> Any:
        """``path`` like ``chat.completions.create`` on the chosen client."""
        target: Any = self.async_ if self.kind == "async" else self.sync
        for name in path.split("."):
            target = getattr(target, name)
        if self.kind == "async":
            return await target(*args, **kwargs)
        return await asyncio.to_thread(target, *args, **kwargs)

    async def chat(self, **kwargs: Any) -> ChatCompletion:
        result: ChatCompletion = await self.call("chat.completions.create", **kwargs)
        return result

    async def stream(self, **kwargs: Any) -> list[ChatCompletionChunk]:
        """A whole stream, read to the end."""
        if self.kind == "async":
            stream = await self.async_.chat.completions.create(stream=True, **kwargs)
            return [chunk async for chunk in stream]
        return await asyncio.to_thread(
            lambda: list(self.sync.chat.completions.create(stream=True, **kwargs))
        )

    async def aclose(self) -> None:
        await self.async_.close()
        await asyncio.to_thread(self.sync.close)
