"""Rate limits and budget reservations shared by every server through Redis.

Each decision is one Lua script, so check and update are atomic across servers. Reservations
carry an expiry: a server that dies holding some does not block its project for ever.
SQLite stays the ledger of record on each host; Redis holds the shared counters.
"""

from __future__ import annotations

import itertools
import os
import time
from typing import cast

import redis.asyncio as aioredis

from budgets.guard import BudgetStatus, Reservation
from budgets.keys import Project
from budgets.ledger import UsageLedger
from budgets.periods import period_end, period_start
from budgets.ratelimit import WINDOW_S, RateTicket, evaluate
from core.errors import InsufficientQuota
from core.redis_conn import redis_errors

# KEYS: requests zset, tokens zset. ARGV: now ms, window ms, rpm (-1 none), tpm (-1 none), tokens, member.
# Returns {admitted, used requests, oldest request ms, used tokens, oldest token ms}.
_ADMIT = """
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local rpm = tonumber(ARGV[3])
local tpm = tonumber(ARGV[4])
local tokens = tonumber(ARGV[5])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - window)
local used = redis.call('ZCARD', KEYS[1])
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local used_tokens = 0
for _, member in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
  used_tokens = used_tokens + tonumber(string.match(member, ':(%d+)$'))
end
local oldest_tokens = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
local oldest_ms = oldest[2] or tostring(now)
local oldest_tokens_ms = oldest_tokens[2] or tostring(now)
local fits = true
if rpm >= 0 and used + 1 > rpm then fits = false end
if tpm >= 0 and (tokens > tpm or used_tokens + tokens > tpm) then fits = false end
if fits then
  redis.call('ZADD', KEYS[1], now, ARGV[6])
  redis.call('PEXPIRE', KEYS[1], window)
  if tpm >= 0 then
    redis.call('ZADD', KEYS[2], now, ARGV[6] .. ':' .. tokens)
    redis.call('PEXPIRE', KEYS[2], window)
  end
end
return {fits and 1 or 0, used, oldest_ms, used_tokens, oldest_tokens_ms}
"""

# KEYS: tokens zset. ARGV: member id, new token count.
_ADJUST = """
local entries = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
for i = 1, #entries, 2 do
  if string.match(entries[i], '^(.*):%d+$') == ARGV[1] then
    redis.call('ZREM', KEYS[1], entries[i])
    redis.call('ZADD', KEYS[1], entries[i + 1], ARGV[1] .. ':' .. ARGV[2])
    return 1
  end
end
return 0
"""

# KEYS: spent, reservation amounts hash, reservation expiry zset.
# ARGV: amount, budget (-1 none), reservation id, expires at, now, ledger spend to seed, spent ttl.
_RESERVE = """
local now = tonumber(ARGV[5])
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now)) do
  redis.call('HDEL', KEYS[2], id)
end
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('SET', KEYS[1], ARGV[6], 'EX', ARGV[7])
end
local spent = tonumber(redis.call('GET', KEYS[1]))
local reserved = 0
for _, value in ipairs(redis.call('HVALS', KEYS[2])) do reserved = reserved + tonumber(value) end
local amount = tonumber(ARGV[1])
local budget = tonumber(ARGV[2])
if budget >= 0 and spent + reserved + amount - budget > 1e-9 then
  return {0, tostring(spent), tostring(reserved)}
end
redis.call('HSET', KEYS[2], ARGV[3], ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[3])
return {1, tostring(spent), tostring(reserved + amount)}
"""

# KEYS: spent, reservation amounts hash, reservation expiry zset. ARGV: reservation id, cost, spent ttl.
_SETTLE = """
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('INCRBYFLOAT', KEYS[1], ARGV[2])
end
return 1
"""


class RedisRateLimiter:
    """`RateLimiter` over sorted sets of the last minute's requests and tokens, per key."""

    def __init__(self, client: aioredis.Redis, prefix: str) -> None:
        self.client = client
        self.prefix = prefix
        self._admit = client.register_script(_ADMIT)
        self._adjust = client.register_script(_ADJUST)
        self._ids = itertools.count(1)
        self._instance = os.urandom(4).hex()

    def _keys(self, key: str) -> list[str]:
        return [f"{self.prefix}rl:{key}:requests", f"{self.prefix}rl:{key}:tokens"]

    async def admit(self, key: str, *, rpm: int | None, tpm: int | None, tokens: int) -> RateTicket:
        member = f"{self._instance}-{next(self._ids)}"
        now_ms = int(time.time() * 1000)
        async with redis_errors("check the rate limits"):
            fits, used, oldest_ms, used_tokens, oldest_tokens_ms = await self._admit(
                keys=self._keys(key),
                args=[
                    now_ms,
                    int(WINDOW_S * 1000),
                    -1 if rpm is None else rpm,
                    -1 if tpm is None else tpm,
                    tokens,
                    member,
                ],
            )
        window_ms = WINDOW_S * 1000
        headers = evaluate(
            rpm=rpm,
            tpm=tpm,
            tokens=tokens,
            used_requests=int(used),
            request_reset=max(float(oldest_ms) + window_ms - now_ms, 0.0) / 1000 if int(used) else 0.0,
            used_tokens=int(used_tokens),
            token_reset=max(float(oldest_tokens_ms) + window_ms - now_ms, 0.0) / 1000 if int(used_tokens) else 0.0,
        )
        if not int(fits):  # evaluate refuses in exactly the cases the script did; this is a guard
            raise RuntimeError("rate limit script and evaluate() disagree")
        return RateTicket(id=next(self._ids), key=f"{key}\0{member}", tokens=tokens, headers=headers)

    async def adjust(self, ticket: RateTicket, actual_tokens: int) -> None:
        key, member = ticket.key.split("\0", 1)
        async with redis_errors("correct the token count"):
            await self._adjust(keys=self._keys(key)[1:], args=[member, max(int(actual_tokens), 0)])


class RedisBudgetGuard:
    """`BudgetGuard` with spend and reservations in Redis, seeded from this host's ledger."""

    def __init__(self, client: aioredis.Redis, prefix: str, ledger: UsageLedger, *, hold_s: float) -> None:
        self.client = client
        self.prefix = prefix
        self.ledger = ledger
        self.hold_s = hold_s  # how long a reservation lives if its server never settles it
        self._reserve = client.register_script(_RESERVE)
        self._settle = client.register_script(_SETTLE)
        self._ids = itertools.count(1)
        self._instance = os.urandom(4).hex()

    def _keys(self, project: str, period: str, now: float) -> list[str]:
        start = int(period_start(period, now))
        return [
            f"{self.prefix}budget:{project}:spent:{period}:{start}",
            f"{self.prefix}budget:{project}:reserved",
            f"{self.prefix}budget:{project}:expiry",
        ]

    def _spent_ttl(self, period: str, now: float) -> int:
        end = period_end(period, now)
        return int((end - now) + 86_400) if end is not None else 400 * 86_400

    async def reserve(self, project: Project, amount: float) -> Reservation:
        now = time.time()
        reservation = Reservation(
            id=f"{self._instance}-{next(self._ids)}", project=project.name, amount=amount, period=project.budget_period
        )
        seed = self.ledger.spent(project.name, since=period_start(project.budget_period, now))
        budget = -1.0 if project.budget_usd is None else project.budget_usd
        async with redis_errors("reserve the budget"):
            fits, spent, reserved = await self._reserve(
                keys=self._keys(project.name, project.budget_period, now),
                args=[
                    repr(amount),
                    repr(budget),
                    reservation.id,
                    now + self.hold_s,
                    now,
                    repr(seed),
                    self._spent_ttl(project.budget_period, now),
                ],
            )
        if not int(fits):
            left = max(budget - float(spent) - float(reserved), 0.0)
            raise InsufficientQuota(
                f"Project '{project.name}' has ${left:.6f} of its {project.budget_period} budget of "
                f"${budget:.2f} left, and this request may cost up to ${amount:.6f}. "
                "Lower max_tokens, or raise the budget."
            )
        return reservation

    async def settle(self, reservation: Reservation, actual_cost: float) -> None:
        now = time.time()
        async with redis_errors("settle the budget"):
            await self._settle(
                keys=self._keys(reservation.project, reservation.period, now),
                args=[reservation.id, repr(actual_cost), self._spent_ttl(reservation.period, now)],
            )

    async def status(self, project: Project) -> BudgetStatus:
        now = time.time()
        spent_key, amounts, expiry = self._keys(project.name, project.budget_period, now)
        async with redis_errors("read the budget"):
            await self.client.zremrangebyscore(expiry, "-inf", now)
            raw_spent = await self.client.get(spent_key)
            # Without scores, ZRANGE answers the member names: the reservation ids.
            live = cast(list[bytes], await self.client.zrange(expiry, 0, -1))
            values = await self.client.hmget(amounts, live) if live else []
        spent = (
            float(raw_spent)
            if raw_spent is not None
            else self.ledger.spent(project.name, since=period_start(project.budget_period, now))
        )
        reserved = sum(float(v) for v in values if v is not None)
        return BudgetStatus.of(project, spent=spent, reserved=reserved, now=now)
