"""One sync per project at a time: a lease in Redis that its holder renews while it lives.

The lock saves work, not correctness: a sync re-checks Label Studio after its last import, and
before every batch once it no longer holds the lock (`project_runs`), so two syncs that overlap
still leave one task per run. That lets the lease be short. It lapses `ttl_s` seconds after
its holder stops renewing it (killed, frozen, cut off from Redis); a holder on this machine
whose process is gone is replaced at once; and
`tracetune sync --break-lock` removes it by hand. The value names the holder and since when,
so whoever finds the project locked knows what is running.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import secrets
import socket
import threading
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

import redis

from tracetune.sync.errors import SyncLockedError

# Compare-and-act scripts: only the holder's own token may renew or release the lock, and a
# stale holder is replaced only if it is still the one that was found stale.
_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0"""
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0"""
_REPLACE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  redis.call('set', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0"""


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (some containers)
        return str(os.getuid())


@dataclass(frozen=True)
class LockHolder:
    """Who holds a project's sync lock: enough to find the process and judge if it lives."""

    user: str
    host: str
    pid: int
    since: str  # ISO 8601, UTC
    #: Makes each acquisition's value unique: a holder whose lock was broken and taken by
    #: another sync can no longer renew or release it.
    token: str

    @classmethod
    def me(cls) -> LockHolder:
        now = datetime.now(UTC).replace(microsecond=0).isoformat()
        return cls(_user(), socket.gethostname(), os.getpid(), now, secrets.token_hex(8))

    @classmethod
    def parse(cls, raw: bytes | str) -> LockHolder | None:
        """The holder a lock value names, or None for a value of another format."""
        try:
            return cls(**json.loads(raw))
        except (ValueError, TypeError):
            return None

    def encode(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    def describe(self) -> str:
        since = self.since.replace("T", " ").replace("+00:00", " UTC")
        return f"{self.user}@{self.host} (pid {self.pid}) since {since}"

    def is_dead_here(self) -> bool:
        """True only when the holder ran on this machine and its process no longer exists."""
        if self.host != socket.gethostname():
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:  # alive, another user's
            return False
        return False


class SyncLock:
    """The sync lock of one project. `acquire` raises `SyncLockedError` naming the holder."""

    def __init__(self, client: redis.Redis, key: str, project: str, ttl_s: float) -> None:
        self.client = client
        self.key = key
        self.project = project
        self.ttl_ms = int(ttl_s * 1000)
        self.me = LockHolder.me()
        #: The dead holder this sync took the lock from, if it did.
        self.replaced: LockHolder | None = None
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None
        self._renewed_at = 0.0
        self._taken = False

    @property
    def held(self) -> bool:
        """Still ours: not broken by hand, not taken after a lapse, renewed within the lease."""
        lease = self.ttl_ms / 1000
        return not self._taken and time.monotonic() - self._renewed_at < lease

    def acquire(self) -> None:
        value = self.me.encode()
        for _ in range(3):  # the holder may release between our two calls: try again
            if self.client.set(self.key, value, nx=True, px=self.ttl_ms):
                self._start_renewing()
                return
            current = self.client.get(self.key)
            if current is None:
                continue
            holder = LockHolder.parse(current)
            if holder is not None and holder.is_dead_here():
                if self.client.eval(_REPLACE, 1, self.key, current, value, self.ttl_ms):
                    self.replaced = holder
                    self._start_renewing()
                    return
                continue
            raise SyncLockedError(self._locked_message(holder))
        raise SyncLockedError(self._locked_message(None))

    def _locked_message(self, holder: LockHolder | None) -> str:
        who = holder.describe() if holder else "a holder of unknown format"
        ttl = self.ttl_ms / 1000
        return (
            f"another sync into {self.project!r} is running: {who}. Its lock lapses {ttl:g} s "
            "after that sync stops; `tracetune sync --break-lock` removes it now"
        )

    def _start_renewing(self) -> None:
        self._renewed_at = time.monotonic()
        self._renewer = threading.Thread(target=self._renew, name="sync-lock-renewer", daemon=True)
        self._renewer.start()

    def _renew(self) -> None:
        """Extend the lease every third of its life; a Redis hiccup is retried next time."""
        token = self.me.encode()
        while not self._stop.wait(self.ttl_ms / 3000):
            renewing = time.monotonic()
            with contextlib.suppress(redis.RedisError):
                if not self.client.eval(_RENEW, 1, self.key, token, self.ttl_ms):
                    self._taken = True  # broken by hand or lapsed: another sync may hold it
                    return
                self._renewed_at = renewing

    def release(self) -> None:
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join()
        with contextlib.suppress(redis.RedisError):
            self.client.eval(_RELEASE, 1, self.key, self.me.encode())


def break_lock(client: redis.Redis, key: str) -> str | None:
    """Remove a project's sync lock whoever holds it; returns who held it, if anyone did."""
    current = client.getdel(key)
    if current is None:
        return None
    holder = LockHolder.parse(current)
    return holder.describe() if holder else "a holder of unknown format"
