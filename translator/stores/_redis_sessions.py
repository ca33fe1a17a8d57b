"""Session histories in Redis, shared by every process and replica.

A session is two keys under the link's prefix: ``s:<id>:i`` holds its
instructions (one JSON array) and ``s:<id>:t`` its turns (a list, one JSON
message per item). ``append`` is one Lua script, so it is atomic on the Redis
server: two replicas appending to one session at once each add their whole
turn, and neither is lost or interleaved. The script also trims the turns and
renews both keys' idle TTL (``PEXPIRE``); ``load`` renews it too.

Bounds, as :class:`~translator.stores.MemorySessionStore`'s: ``idle_ttl``,
``max_messages`` turn messages, and ``max_bytes`` of messages, here per
session (Redis's own ``maxmemory`` bounds the whole). Turns are dropped
oldest first and whole: the kept history restarts at a user message. There is
no ``max_sessions``: idle sessions expire.

A Redis that lost its data (restarted without persistence, ``FLUSHALL``)
simply has no history: the session starts afresh.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from .._model import Message
from ._redis_link import RedisLink
from ._sessions import SessionStore, split_instructions

__all__ = ["RedisSessionStore"]

_encoder = msgspec.json.Encoder()
_history = msgspec.json.Decoder(list[Message])

# KEYS: instructions, turns. ARGV: ttl ms, max messages, max bytes,
# instructions JSON ("" keeps the stored ones), then the new turn messages.
_APPEND = """
local ikey, tkey = KEYS[1], KEYS[2]
local ttl, max_messages, max_bytes = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
if ARGV[4] ~= '' then redis.call('SET', ikey, ARGV[4]) end
for i = 5, #ARGV do redis.call('RPUSH', tkey, ARGV[i]) end
local turns = redis.call('LRANGE', tkey, 0, -1)
local n = #turns
local at_least = n - max_messages
if at_least < 0 then at_least = 0 end
local excess = redis.call('STRLEN', ikey) - max_bytes
for i = 1, n do excess = excess + #turns[i] end
local i = 0
while i < n and (i < at_least or excess > 0) do
  excess = excess - #turns[i + 1]
  i = i + 1
end
at_least = i
if at_least > 0 then
  local function role_is(m, role)
    return string.sub(m, 1, #role + 10) == '{"role":"' .. role .. '"'
  end
  local function is_result(m) return role_is(m, 'tool') or role_is(m, 'function') end
  local cut = nil
  for j = at_least, n - 1 do
    if role_is(turns[j + 1], 'user') then cut = j break end
  end
  if cut == nil then
    cut = math.min(at_least, n - 1)
    while cut < n - 1 and is_result(turns[cut + 1]) do
      cut = cut + 1
    end
  end
  if cut > 0 then redis.call('LTRIM', tkey, cut, -1) end
end
redis.call('PEXPIRE', tkey, ttl)
redis.call('PEXPIRE', ikey, ttl)
return n
"""


class RedisSessionStore(SessionStore):
    """Sessions in the Redis of ``link``, bounded as the class docstring says."""

    def __init__(
        self,
        link: RedisLink,
        *,
        idle_ttl: float = 3600.0,
        max_messages: int = 200,
        max_bytes: int = 16 * 1024 * 1024,
    ) -> None:
        if min(max_messages, max_bytes) < 1 or idle_ttl <= 0:
            raise ValueError("max_messages, max_bytes and idle_ttl must be positive")
        self.link = link
        self.idle_ttl = idle_ttl
        self.max_messages = max_messages
        self.max_bytes = max_bytes
        self._ttl_ms = max(1, int(idle_ttl * 1000))
        self._append = link.client.register_script(_APPEND)

    def _keys(self, session_id: str) -> tuple[str, str]:
        return self.link.key("s", session_id, "i"), self.link.key("s", session_id, "t")

    async def load(self, session_id: str) -> list[Message]:
        ikey, tkey = self._keys(session_id)
        guard = self.link.guard("session")
        async with guard, self.link.client.pipeline(transaction=True) as pipe:
            pipe.get(ikey)
            pipe.lrange(tkey, 0, -1)
            pipe.pexpire(ikey, self._ttl_ms)
            pipe.pexpire(tkey, self._ttl_ms)
            instructions, turns, _, _ = await pipe.execute()
        if not instructions and not turns:
            return []
        parts = [instructions[1:-1], *turns] if instructions else turns
        return _history.decode(b"[%s]" % b",".join(parts))

    async def append(self, session_id: str, messages: Sequence[Message]) -> None:
        n = split_instructions(messages)
        instructions = _encoder.encode(list(messages[:n])) if n else b""
        turns = [_encoder.encode(m) for m in messages[n:]]
        async with self.link.guard("session"):
            await self._append(
                keys=list(self._keys(session_id)),
                args=[self._ttl_ms, self.max_messages, self.max_bytes, instructions, *turns],
            )

    async def ping(self) -> None:
        await self.link.ping("sessions")

    async def clear(self, session_id: str) -> None:
        async with self.link.guard("session"):
            await self.link.client.delete(*self._keys(session_id))
