"""A project's LSH buckets in Redis, and each task's remembered candidates.

Buckets are Redis sets of task ids, one per bucket name (`lsh.py` says which buckets a task
falls in). Finding a task's candidates is the union of its query buckets, made by Redis. A
task predicted again usually has the same candidates as last time, and computing the union
of its 32 buckets again was most of a cached prediction; so the union of a task's `pair`
buckets is remembered in one hash (`cache`), under a digest of the bucket names it was made
from, and kept current by every write to a `pair` bucket. What is remembered is therefore
always what the union would be now:

- a task whose signature changed asks for other buckets, whose digest does not match;
- a task joining a bucket is added to the set of newcomers of every member of that bucket
  (a bucket holds the few tasks alike on both sides, and adding to a set costs the same
  however long the union is; a member's newcomers are dropped when its union is computed
  again); a task leaving one (its signature changed) makes the bucket's members compute
  their unions again;
- the scripts run atomically, so a union remembered by one process cannot miss a write
  made by another.

Buckets of one side alone (`user`, `answer`) are larger and queried only by tasks lacking a
side; their unions are not remembered, so writing to them updates nothing.

Bucket names are sent after a common prefix that the scripts complete: a batch queries about
3,200 buckets, and the prefix was most of what a request sent to Redis. (Names built inside
a script are what Redis Cluster forbids; the index lives on one Redis, as MGET across it
does.)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import redis

#: Lua. A remembered union is "<sha1 of the bucket names>|,<id>,<id>,...," in the hash
#: `cache`, plus the set `joined .. <task>` of tasks that joined its buckets since: adding to
#: a set costs the same however long the union is.
_REMEMBER = """
local function remember(cache, joined, task, prefix, names)
  local full = {}
  for i, name in ipairs(names) do full[i] = prefix .. name end
  local members = redis.call('SUNION', unpack(full))
  redis.call('HSET', cache, task, redis.sha1hex(table.concat(names, ',')) .. '|,'
    .. table.concat(members, ',') .. (#members > 0 and ',' or ''))
  redis.call('DEL', joined .. task)
end
local function forget_members(cache, joined, bucket)
  for _, member in ipairs(redis.call('SMEMBERS', bucket)) do
    redis.call('HDEL', cache, member)
    redis.call('DEL', joined .. member)
  end
end
local function join_members(joined, bucket, task)
  for _, member in ipairs(redis.call('SMEMBERS', bucket)) do
    redis.call('SADD', joined .. member, task)
  end
end
"""

#: ARGV: prefix, cache, joined, then per task: id, remembered (1: pair buckets), count,
#: names. Returns {unions, hits}: per task its union (integers), 1 where it was remembered.
_UNIONS = """
local prefix, cache, joined = ARGV[1], ARGV[2], ARGV[3]
local unions, hits, at, t = {}, {}, 4, 1
while at <= #ARGV do
  local task, remembered, count = ARGV[at], ARGV[at + 1] == '1', tonumber(ARGV[at + 2])
  local names = {}
  for i = 1, count do names[i] = ARGV[at + 2 + i] end
  local members = nil
  if remembered and count > 0 then
    local entry = redis.call('HGET', cache, task)
    if entry then
      local digest, list = string.match(entry, '^(%x+)|(.*)$')
      if digest == redis.sha1hex(table.concat(names, ',')) then
        members = {}
        for m in string.gmatch(list, '%d+') do members[#members + 1] = tonumber(m) end
        for _, m in ipairs(redis.call('SMEMBERS', joined .. task)) do
          members[#members + 1] = tonumber(m)
        end
      end
    end
  end
  if members then
    hits[t] = 1
  else
    hits[t] = 0
    members = {}
    if count > 0 then
      local full = {}
      for i, name in ipairs(names) do full[i] = prefix .. name end
      members = redis.call('SUNION', unpack(full))
      for i, member in ipairs(members) do members[i] = tonumber(member) end
    end
  end
  unions[t] = members
  at, t = at + count + 3, t + 1
end
return {unions, hits}
"""

#: ARGV: prefix, cache, joined, then three sections, each led by its length in entries:
#: removals (name, id, tracked 1/0), additions (name, id, tracked 1/0), and the unions to
#: remember once the batch is written (id, count, names).
_WRITE = (
    _REMEMBER
    + """
local prefix, cache, joined, at = ARGV[1], ARGV[2], ARGV[3], 4
for _, command in ipairs({'SREM', 'SADD'}) do
  local entries = tonumber(ARGV[at])
  at = at + 1
  for e = 1, entries do
    local bucket, task, tracked = prefix .. ARGV[at], ARGV[at + 1], ARGV[at + 2] == '1'
    if tracked and command == 'SREM' then forget_members(cache, joined, bucket) end
    if tracked and command == 'SADD' then join_members(joined, bucket, task) end
    redis.call(command, bucket, task)
    at = at + 3
  end
end
local tasks = tonumber(ARGV[at])
at = at + 1
for e = 1, tasks do
  local task, count = ARGV[at], tonumber(ARGV[at + 1])
  local names = {}
  for i = 1, count do names[i] = ARGV[at + 1 + i] end
  if count > 0 then remember(cache, joined, task, prefix, names) end
  at = at + count + 2
end
return 1
"""
)


@dataclass(frozen=True)
class Query:
    """A task's query buckets (names after the prefix); `remembered`: its union is kept."""

    task_id: int
    buckets: Sequence[str]
    remembered: bool


@dataclass(frozen=True)
class Membership:
    """A task in (or out of) one bucket; `tracked`: its members' unions are remembered."""

    bucket: str
    task_id: int
    tracked: bool


class BucketStore:
    """The buckets under `prefix`, the remembered unions in the hash `cache` and the sets of
    tasks that joined them under `joined`."""

    def __init__(self, client: redis.Redis, prefix: str, cache: str, joined: str) -> None:
        self.client = client
        self.prefix = prefix
        self.cache = cache
        self.joined = joined

    def unions(self, queries: Sequence[Query]) -> tuple[list[set[int]], list[bool]]:
        """Per query, every task in its buckets (itself included) and whether it was
        remembered."""
        arguments: list[str | int] = [self.prefix, self.cache, self.joined]
        for query in queries:
            arguments += [query.task_id, int(query.remembered), len(query.buckets)]
            arguments += list(query.buckets)
        if not any(query.buckets for query in queries):
            return [set() for _ in queries], [False] * len(queries)
        found = cast(list[list[Any]], self.client.eval(_UNIONS, 0, *arguments))
        unions: list[list[int]] = found[0]
        hits: list[int] = found[1]
        return [set(members) for members in unions], [bool(hit) for hit in hits]

    def write(
        self,
        removals: Sequence[Membership],
        additions: Sequence[Membership],
        remember: Sequence[Query],
        pipe: redis.client.Pipeline | None = None,
    ) -> None:
        """Remove, then add, then remember the unions of `remember` as they are after the
        writes: in one script, so no other process sees the buckets half written. `pipe`:
        queue it there instead of running it now."""
        arguments: list[str | int] = [self.prefix, self.cache, self.joined]
        for section in (removals, additions):
            arguments.append(len(section))
            for entry in section:
                arguments += [entry.bucket, entry.task_id, int(entry.tracked)]
        kept = [query for query in remember if query.buckets]
        arguments.append(len(kept))
        for query in kept:
            arguments += [query.task_id, len(query.buckets), *query.buckets]
        if not removals and not additions and not kept:
            return
        (pipe or self.client).eval(_WRITE, 0, *arguments)
