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
`bench/workload.py`). It is not done.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import redis

#: ARGV: prefix, then per task its bucket names (space-separated). Per task, its union.
_UNIONS = """
local prefix, unions = ARGV[1], {}
for t = 2, #ARGV do
  local names = {}
  for name in string.gmatch(ARGV[t], '%S+') do names[#names + 1] = prefix .. name end
  local members = {}
  if #names > 0 then
    members = redis.call('SUNION', unpack(names))
    for i, member in ipairs(members) do members[i] = tonumber(member) end
  end
  unions[t - 1] = members
end
return unions
"""

#: ARGV: prefix, then per task: 'SREM' or 'SADD', its id, its bucket names (space-separated).
_WRITE = """
local prefix = ARGV[1]
for at = 2, #ARGV, 3 do
  local command, task = ARGV[at], ARGV[at + 1]
  for name in string.gmatch(ARGV[at + 2], '%S+') do
    redis.call(command, prefix .. name, task)
  end
end
return 1
"""


@dataclass(frozen=True)
class Membership:
    """A task in (or out of) some buckets; `buckets` are the names after the prefix."""

    task_id: int
    buckets: Sequence[str]


class BucketStore:
    """The buckets under `prefix`."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self.client = client
        self.prefix = prefix

    def unions(self, queries: Sequence[Sequence[str]]) -> list[set[int]]:
        """Per query (bucket names), every task in those buckets."""
        if not any(queries):
            return [set() for _ in queries]
        arguments = [self.prefix, *(" ".join(buckets) for buckets in queries)]
        found = cast(list[list[int]], self.client.eval(_UNIONS, 0, *arguments))
        return [set(members) for members in found]

    def write(
        self,
        removals: Sequence[Membership],
        additions: Sequence[Membership],
        pipe: redis.client.Pipeline | None = None,
    ) -> None:
        """Remove, then add, in one script (no other process sees a task half moved).
        `pipe`: queue it there instead of running it now."""
        arguments: list[str | int] = [self.prefix]
        for command, section in (("SREM", removals), ("SADD", additions)):
            for entry in section:
                if entry.buckets:
                    arguments += [command, entry.task_id, " ".join(entry.buckets)]
        if len(arguments) > 1:
            (pipe or self.client).eval(_WRITE, 0, *arguments)
