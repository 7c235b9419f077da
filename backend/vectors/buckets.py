"""A project's LSH buckets in Redis: Redis sets of task ids, one per bucket name (`lsh.py`
says which buckets a task falls in and looks in).

A task's candidates are the union of its query buckets, made by Redis, for a whole batch in
one script call; a batch's writes are one script call too. A batch names about 3,200
buckets, and sending each name as its own argument cost more than Redis's work (the client
encodes every argument apart): so each task's names go as one space-separated argument,
after a common prefix that the scripts complete. (Names built inside a script are what Redis
Cluster forbids; the index lives on one Redis, as MGET across it does.)

Remembering each task's union between requests, kept exact by every write, was tried and
measured: reading a remembered union cost Redis about what the union of a task's few-member
buckets does, and keeping them current made every new task visit every member of its buckets,
which grows with the project (0.4-0.5 ms more per new task at 30,000 tasks of
`bench/workload.py`). What is kept instead is each task's match (`kept_matches.py`), which a
new task brings up to date from the comparisons it makes anyway; the write script forgets
kept matches only where the writer cannot bring them up to date, and a counter of writes
tells it when that is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import redis

#: KEYS: the write counter. ARGV: prefix, then per task its bucket names (space-separated).
#: Returns the counter as read, then per task its union.
_UNIONS = """
local prefix, unions = ARGV[1], {tonumber(redis.call('GET', KEYS[1]) or '0')}
for t = 2, #ARGV do
  local names = {}
  for name in string.gmatch(ARGV[t], '%S+') do names[#names + 1] = prefix .. name end
  local members = {}
  if #names > 0 then
    members = redis.call('SUNION', unpack(names))
    for i, member in ipairs(members) do members[i] = tonumber(member) end
  end
  unions[t] = members
end
return unions
"""

#: KEYS: the write counter, the kept matches. ARGV: prefix, the watched family's prefix, the
#: counter as the writer read it ('' when it read nothing), the number of memberships; then
#: per membership: 'SREM', 'SADD' or 'SADD!', its task id, its bucket names (space-separated);
#: then per kept match to write: task id, value.
#: Kept matches are written only when no other write came after the writer read, and before
#: the memberships: 'SREM' and 'SADD!' then forget the kept matches of every task in the
#: watched buckets they touch (one written just now included: it was brought up to date from
#: what the writer read, which may list the task as it was); 'SADD' does so only when
#: another write came after the writer read (the writer could not know its tasks).
#: Returns 1 when the kept matches were written.
_WRITE = """
local prefix, watched, read = ARGV[1], ARGV[2], ARGV[3]
local last = 4 + 3 * tonumber(ARGV[4])
local calm = read ~= '' and tonumber(redis.call('GET', KEYS[1]) or '0') == tonumber(read)
redis.call('INCR', KEYS[1])
if calm then
  for at = last + 1, #ARGV, 2 do redis.call('HSET', KEYS[2], ARGV[at], ARGV[at + 1]) end
end
local function forget(name)
  if string.sub(name, 1, #watched) ~= watched then return end
  local members = redis.call('SMEMBERS', prefix .. name)
  for from = 1, #members, 1000 do
    redis.call('HDEL', KEYS[2], unpack(members, from, math.min(from + 999, #members)))
  end
end
for at = 5, last, 3 do
  local command, task = ARGV[at], ARGV[at + 1]
  local everyone = command ~= 'SADD' or not calm
  if command == 'SADD!' then command = 'SADD' end
  for name in string.gmatch(ARGV[at + 2], '%S+') do
    if everyone then forget(name) end
    redis.call(command, prefix .. name, task)
  end
end
return calm and 1 or 0
"""


@dataclass(frozen=True)
class Membership:
    """A task in (or out of) some buckets; `buckets` are the names after the prefix.
    `forgets`: adding it forgets the kept matches of the watched buckets' members (for a task
    whose candidates' matches the writer did not bring up to date itself)."""

    task_id: int
    buckets: Sequence[str]
    forgets: bool = False


@dataclass(frozen=True)
class Unions:
    """Per query, every task in its buckets, and the write counter they were read at."""

    members: list[set[int]]
    read_at: int


@dataclass(frozen=True)
class BucketStore:
    """The buckets under `prefix`, and the matches kept for tasks of the `watched` family's
    buckets (a hash, task id to value: `duplicates.py` says what a value holds).

    Every write counts in `counter`, so a writer knows whether the buckets it read are still
    as it read them: a kept match written from an older reading could miss a task.
    """

    client: redis.Redis
    prefix: str
    counter: str
    matches: str
    watched: str

    def unions(self, queries: Sequence[Sequence[str]]) -> Unions:
        """Per query (bucket names), every task in those buckets."""
        arguments = [self.prefix, *(" ".join(buckets) for buckets in queries)]
        found = cast(list[Any], self.client.eval(_UNIONS, 1, self.counter, *arguments))
        return Unions([set(members) for members in found[1:]], int(found[0]))

    def write(
        self,
        removals: Sequence[Membership],
        additions: Sequence[Membership],
        matches: Mapping[int, bytes] | None = None,
        read_at: int | None = None,
        pipe: redis.client.Pipeline | None = None,
    ) -> None:
        """Remove, then add, in one script (no other process sees a task half moved), and
        keep `matches` (task id to value) when no write came since `read_at`.
        `pipe`: queue it there instead of running it now."""
        entries: list[str | int] = []
        for command, section in (("SREM", removals), ("SADD", additions)):
            for entry in section:
                if entry.buckets:
                    forgets = command == "SADD" and entry.forgets
                    entries += [f"{command}!" if forgets else command, entry.task_id]
                    entries.append(" ".join(entry.buckets))
        kept = [part for task, value in (matches or {}).items() for part in (task, value)]
        if not entries and not kept:
            return
        arguments = [
            self.prefix,
            self.watched,
            "" if read_at is None else read_at,
            len(entries) // 3,
            *entries,
            *kept,
        ]
        (pipe or self.client).eval(_WRITE, 2, self.counter, self.matches, *arguments)

    def kept(self, task_ids: Sequence[int], pipe: redis.client.Pipeline) -> None:
        """Queue reading the kept matches of `task_ids` (a list of values or None)."""
        pipe.hmget(self.matches, list(task_ids))
