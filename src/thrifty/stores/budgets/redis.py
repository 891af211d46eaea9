"""The Redis budget store: budget counters, reservations and rate-limit windows shared by every
gateway process. Each operation is one Lua script (one round trip, atomic in Redis): checking
every budget of a call and reserving on all of them is a single step no concurrent request can
slip between. Time is Redis's own clock (``TIME``), the same for every process.

Keys (all under the configured prefix; a single Redis server, not Cluster):

* ``c:LINE`` hash -- ``s`` the spend of a calendar period, ``bN`` the spend of rolling bucket N,
  ``r`` the reservations in flight;
* ``res:ID`` hash -- a reservation: its owner, and each line's key, amount and bucket;
* ``own:OWNER`` set -- the owner's reservations; ``owners`` sorted set -- owners by lease expiry.
  A process renews its lease every few seconds; once it lapses (the process died), the next
  script to run releases that owner's reservations;
* ``subj:BUDGET<US>PERIOD`` set -- who has a counter of a per-subject budget in a period;
* ``rl:LINE`` hash -- a rate-limit window, by bucket; ``alert:KEY`` -- an alert already sent;
* ``defs`` hash -- the budget definitions, by id.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from thrifty.stores.budgets.base import SEP, Line, LineUsage, RateLine, RateRefusal, Refusal, StoreUnavailable

__all__ = ["RedisBudgetStore"]

_COMMON = r"""
local P = ARGV[1]
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function take(id)
  local res = P .. 'res:' .. id
  local data = redis.call('HGETALL', res)
  if #data == 0 then return nil end
  local h = {}
  for i = 1, #data, 2 do h[data[i]] = data[i + 1] end
  for i = 1, tonumber(h['n']) do
    local amount = h['a' .. i]
    if amount ~= '0' then redis.call('HINCRBY', P .. 'c:' .. h['k' .. i], 'r', '-' .. amount) end
  end
  redis.call('DEL', res)
  redis.call('SREM', P .. 'own:' .. h['o'], id)
  return h
end
local function purge(now)
  local dead = redis.call('ZRANGEBYSCORE', P .. 'owners', '-inf', now, 'LIMIT', 0, 16)
  for _, owner in ipairs(dead) do
    for _, id in ipairs(redis.call('SMEMBERS', P .. 'own:' .. owner)) do take(id) end
    redis.call('DEL', P .. 'own:' .. owner)
    redis.call('ZREM', P .. 'owners', owner)
  end
end
local function rolling(key, now, rolling_ms, bucket_ms)
  local data = redis.call('HGETALL', key)
  local current = math.floor(now / bucket_ms)
  local span = math.ceil(rolling_ms / bucket_ms)
  local total, oldest = 0, nil
  for i = 1, #data, 2 do
    local field = data[i]
    if string.sub(field, 1, 1) == 'b' then
      local index = tonumber(string.sub(field, 2))
      if index < current - span then
        redis.call('HDEL', key, field)
      else
        local amount = tonumber(data[i + 1])
        total = total + amount
        if amount > 0 and (oldest == nil or index < oldest) then oldest = index end
      end
    end
  end
  local frees = -1
  if oldest then frees = (oldest + span + 1) * bucket_ms end
  return total, frees
end
local function int(x) return string.format('%.0f', x) end
"""

_RESERVE = (
    _COMMON
    + r"""
-- ARGV: prefix, owner, lease_ms, id, n, then for each line:
--   key, amount, limit, rolling_ms, bucket_ms, ttl_s, subjects set, subject
local owner, lease, id, n = ARGV[2], tonumber(ARGV[3]), ARGV[4], tonumber(ARGV[5])
local now = now_ms()
purge(now)
local buckets = {}
for i = 1, n do
  local b = 5 + (i - 1) * 8
  local key = P .. 'c:' .. ARGV[b + 1]
  local amount, limit, rolling_ms = tonumber(ARGV[b + 2]), tonumber(ARGV[b + 3]), tonumber(ARGV[b + 4])
  local spent, frees = 0, -1
  local reserved = tonumber(redis.call('HGET', key, 'r') or '0')
  if rolling_ms > 0 then
    local bucket_ms = tonumber(ARGV[b + 5])
    spent, frees = rolling(key, now, rolling_ms, bucket_ms)
    buckets[i] = math.floor(now / bucket_ms)
  else
    spent = tonumber(redis.call('HGET', key, 's') or '0')
    buckets[i] = 0
  end
  if spent + reserved + amount > limit then
    return {i - 1, int(spent), int(reserved), int(frees), int(now)}
  end
end
local res = P .. 'res:' .. id
redis.call('HSET', res, 'o', owner, 'n', n)
for i = 1, n do
  local b = 5 + (i - 1) * 8
  local key = P .. 'c:' .. ARGV[b + 1]
  local ttl = tonumber(ARGV[b + 6])
  redis.call('HINCRBY', key, 'r', ARGV[b + 2])
  if redis.call('TTL', key) < ttl then redis.call('EXPIRE', key, ttl) end
  redis.call('HSET', res, 'k' .. i, ARGV[b + 1], 'a' .. i, ARGV[b + 2], 't' .. i, buckets[i])
  if ARGV[b + 7] ~= '' then
    local subjects = P .. 'subj:' .. ARGV[b + 7]
    redis.call('SADD', subjects, ARGV[b + 8])
    if redis.call('TTL', subjects) < ttl then redis.call('EXPIRE', subjects, ttl) end
  end
end
redis.call('SADD', P .. 'own:' .. owner, id)
redis.call('ZADD', P .. 'owners', 'GT', now + lease, owner)
return 0
"""
)

_SETTLE = (
    _COMMON
    + r"""
-- ARGV: prefix, id, n, then for each line: key, actual, rolling_ms, bucket_ms, ttl_s
local id, n = ARGV[2], tonumber(ARGV[3])
local held = take(id)
local bucket_of = {}
if held then
  for i = 1, tonumber(held['n']) do bucket_of[held['k' .. i]] = held['t' .. i] end
end
local now = now_ms()
local after = {}
for i = 1, n do
  local b = 3 + (i - 1) * 5
  local line = ARGV[b + 1]
  local key = P .. 'c:' .. line
  local rolling_ms, bucket_ms, ttl = tonumber(ARGV[b + 3]), tonumber(ARGV[b + 4]), tonumber(ARGV[b + 5])
  if rolling_ms > 0 then
    local bucket = bucket_of[line]
    if bucket == nil or bucket == '0' then bucket = int(math.floor(now / bucket_ms)) end
    redis.call('HINCRBY', key, 'b' .. bucket, ARGV[b + 2])
    local total = rolling(key, now, rolling_ms, bucket_ms)
    after[i] = int(total)
  else
    after[i] = tostring(redis.call('HINCRBY', key, 's', ARGV[b + 2]))
  end
  if redis.call('TTL', key) < ttl then redis.call('EXPIRE', key, ttl) end
end
return after
"""
)

_RELEASE = (
    _COMMON
    + r"""
take(ARGV[2])
return 0
"""
)

_HEARTBEAT = (
    _COMMON
    + r"""
-- ARGV: prefix, owner, lease_ms
local now = now_ms()
redis.call('ZADD', P .. 'owners', 'GT', now + tonumber(ARGV[3]), ARGV[2])
purge(now)
return 0
"""
)

_RELEASE_ALL = (
    _COMMON
    + r"""
-- ARGV: prefix, owner
for _, id in ipairs(redis.call('SMEMBERS', P .. 'own:' .. ARGV[2])) do take(id) end
redis.call('DEL', P .. 'own:' .. ARGV[2])
redis.call('ZREM', P .. 'owners', ARGV[2])
return 0
"""
)

_ADMIT = r"""
-- ARGV: prefix, n, then for each line: key, amount, limit, window_ms, bucket_ms
local P, n = ARGV[1], tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for i = 1, n do
  local b = 2 + (i - 1) * 5
  local key = P .. 'rl:' .. ARGV[b + 1]
  local amount, limit = tonumber(ARGV[b + 2]), tonumber(ARGV[b + 3])
  local window_ms, bucket_ms = tonumber(ARGV[b + 4]), tonumber(ARGV[b + 5])
  if amount > limit then return {i - 1, 0, -1} end
  local current = math.floor(now / bucket_ms)
  local span = math.ceil(window_ms / bucket_ms)
  local data = redis.call('HGETALL', key)
  local used, live = 0, {}
  for j = 1, #data, 2 do
    local index = tonumber(data[j])
    if index < current - span then
      redis.call('HDEL', key, data[j])
    else
      local value = tonumber(data[j + 1])
      used = used + value
      live[#live + 1] = {index, value}
    end
  end
  if used + amount > limit then
    table.sort(live, function(x, y) return x[1] < y[1] end)
    local need, freed, wait = used + amount - limit, 0, window_ms
    for _, entry in ipairs(live) do
      freed = freed + entry[2]
      if freed >= need then
        wait = (entry[1] + span + 1) * bucket_ms - now
        break
      end
    end
    if wait < 0 then wait = 0 end
    return {i - 1, used, wait}
  end
end
for i = 1, n do
  local b = 2 + (i - 1) * 5
  local key = P .. 'rl:' .. ARGV[b + 1]
  local bucket_ms = tonumber(ARGV[b + 5])
  redis.call('HINCRBY', key, math.floor(now / bucket_ms), ARGV[b + 2])
  redis.call('PEXPIRE', key, tonumber(ARGV[b + 4]) + 2 * bucket_ms)
end
return 0
"""


class RedisBudgetStore:
    def __init__(
        self,
        url: str,
        *,
        prefix: str = "thrifty:budgets:",
        lease_s: float = 15.0,
        owner: str | None = None,
        max_connections: int = 64,
        timeout_s: float = 2.0,
    ) -> None:
        self._url = url
        self._prefix = prefix
        self._lease_ms = int(lease_s * 1000)
        self._owner = owner or secrets.token_hex(6)
        pool = aioredis.BlockingConnectionPool.from_url(
            url,
            max_connections=max_connections,
            timeout=timeout_s,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            decode_responses=True,
        )
        self._redis = aioredis.Redis(connection_pool=pool)
        self._scripts = {
            name: self._redis.register_script(source)
            for name, source in (
                ("reserve", _RESERVE),
                ("settle", _SETTLE),
                ("release", _RELEASE),
                ("heartbeat", _HEARTBEAT),
                ("release_all", _RELEASE_ALL),
                ("admit", _ADMIT),
            )
        }

    @property
    def url(self) -> str:
        return self._url

    @property
    def owner(self) -> str:
        return self._owner

    @property
    def client(self) -> aioredis.Redis:
        return self._redis

    async def _run(self, script: str, args: list[Any]) -> Any:
        try:
            return await self._scripts[script](keys=[], args=args)
        except RedisError as error:
            raise StoreUnavailable(f"budget store {self._safe_url()}: {type(error).__name__}: {error}") from None
        except OSError as error:
            raise StoreUnavailable(f"budget store {self._safe_url()}: {error}") from None

    def _safe_url(self) -> str:
        scheme, _, rest = self._url.partition("://")
        return f"{scheme}://{rest.rpartition('@')[2]}"  # never a password in a message

    async def reserve(self, reservation: str, lines: Sequence[Line]) -> Refusal | None:
        args: list[Any] = [self._prefix, self._owner, self._lease_ms, reservation, len(lines)]
        for line in lines:
            budget_id, subject, period = line.key.split(SEP)
            args += [
                line.key,
                line.amount,
                line.limit,
                line.rolling_ms,
                line.bucket_ms,
                line.ttl_s,
                budget_id + SEP + period,
                subject,
            ]
        answer = await self._run("reserve", args)
        if answer == 0:
            return None
        index, spent, reserved, frees, now = (int(Decimal(x)) for x in answer)
        retry = None if frees < 0 else max(0.0, (frees - now) / 1000)
        return Refusal(index, spent, reserved, retry)

    async def settle(self, reservation: str, lines: Sequence[Line]) -> list[int]:
        args: list[Any] = [self._prefix, reservation, len(lines)]
        for line in lines:
            args += [line.key, line.amount, line.rolling_ms, line.bucket_ms, line.ttl_s]
        answer = await self._run("settle", args)
        return [int(Decimal(x)) for x in answer]

    async def release(self, reservation: str) -> None:
        await self._run("release", [self._prefix, reservation])

    async def heartbeat(self) -> None:
        await self._run("heartbeat", [self._prefix, self._owner, self._lease_ms])

    async def release_all(self) -> None:
        await self._run("release_all", [self._prefix, self._owner])

    async def admit(self, lines: Sequence[RateLine]) -> RateRefusal | None:
        args: list[Any] = [self._prefix, len(lines)]
        for line in lines:
            args += [line.key, line.amount, line.limit, line.window_ms, line.bucket_ms]
        answer = await self._run("admit", args)
        if answer == 0:
            return None
        index, used, wait_ms = (int(x) for x in answer)
        return RateRefusal(index, used, None if wait_ms < 0 else wait_ms / 1000)

    async def usage(self, lines: Sequence[Line]) -> list[LineUsage]:
        from thrifty.stores.budgets.base import rolling_sum

        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.time()
                for line in lines:
                    pipe.hgetall(self._prefix + "c:" + line.key)
                answers = await pipe.execute()
        except RedisError as error:
            raise StoreUnavailable(f"budget store {self._safe_url()}: {error}") from None
        seconds, micros = answers[0]
        now_ms = int(seconds) * 1000 + int(micros) // 1000
        out = []
        for line, fields in zip(lines, answers[1:], strict=True):
            reserved = int(fields.get("r", 0))
            if line.rolling_ms:
                buckets = {int(k[1:]): int(v) for k, v in fields.items() if k.startswith("b")}
                spent, _, frees_at = rolling_sum(buckets, now_ms, line)
                out.append(LineUsage(spent, reserved, frees_at))
            else:
                out.append(LineUsage(int(fields.get("s", 0)), reserved))
        return out

    async def subjects(self, budget_id: str, period: str) -> list[str]:
        try:
            members = await self._redis.smembers(self._prefix + "subj:" + budget_id + SEP + period)
        except RedisError as error:
            raise StoreUnavailable(f"budget store {self._safe_url()}: {error}") from None
        return sorted(str(m) for m in members)

    async def claim_alert(self, key: str, ttl_s: int) -> bool:
        try:
            return bool(await self._redis.set(self._prefix + "alert:" + key, "1", nx=True, ex=max(1, ttl_s)))
        except RedisError as error:
            raise StoreUnavailable(f"budget store {self._safe_url()}: {error}") from None

    async def definitions(self) -> list[dict[str, Any]]:
        try:
            docs = await self._redis.hgetall(self._prefix + "defs")
        except RedisError as error:
            raise StoreUnavailable(f"budget store {self._safe_url()}: {error}") from None
        return [orjson.loads(docs[k]) for k in sorted(docs)]

    async def put_definition(self, budget_id: str, doc: dict[str, Any], *, only_new: bool = False) -> bool:
        text = orjson.dumps(doc).decode()
        try:
            if only_new:
                return bool(await self._redis.hsetnx(self._prefix + "defs", budget_id, text))
            await self._redis.hset(self._prefix + "defs", budget_id, text)
            return True
        except RedisError as error:
            raise StoreUnavailable(f"budget store {self._safe_url()}: {error}") from None

    async def delete_definition(self, budget_id: str) -> bool:
        try:
            return bool(await self._redis.hdel(self._prefix + "defs", budget_id))
        except RedisError as error:
            raise StoreUnavailable(f"budget store {self._safe_url()}: {error}") from None

    async def ping(self) -> None:
        try:
            await self._redis.ping()
        except RedisError as error:
            raise StoreUnavailable(f"budget store {self._safe_url()}: {error}") from None

    async def close(self) -> None:
        await self._redis.aclose()
