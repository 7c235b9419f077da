"""The sync lock on a real Redis (issue 10, case 2): a short lease renewed while its holder
lives, a message naming the holder, dead holders replaced, `--break-lock`."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
import redis

from tracetune.sync.errors import SyncLockedError
from tracetune.sync.ingest.lock import LockHolder
from tracetune.sync.ingest.state import SyncStore

pytestmark = pytest.mark.integration

TITLE = "Docs QA review"


@pytest.fixture
def store(redis_url: str) -> SyncStore:
    return SyncStore(redis.Redis.from_url(redis_url), "http://label-studio.test")


def test_a_held_lock_names_its_holder_and_since_when(store: SyncStore) -> None:
    held = store.lock(TITLE, ttl_s=30)
    held.acquire()
    try:
        with pytest.raises(SyncLockedError) as raised:
            store.lock(TITLE, ttl_s=30).acquire()
        message = str(raised.value)
        assert f"another sync into {TITLE!r} is running" in message
        assert f"(pid {held.me.pid}) since {held.me.since[:10]}" in message
        assert "--break-lock" in message
        assert raised.value.exit_code == 7
        store.lock("Another project", ttl_s=30).acquire()  # other projects are not locked
    finally:
        held.release()
    store.lock(TITLE, ttl_s=30).acquire()  # released: free again


def test_the_lease_is_renewed_while_its_holder_lives(store: SyncStore) -> None:
    held = store.lock(TITLE, ttl_s=1)
    held.acquire()
    try:
        time.sleep(2.5)  # well past the lease: only renewal keeps it
        with pytest.raises(SyncLockedError):
            store.lock(TITLE, ttl_s=1).acquire()
    finally:
        held.release()


def test_a_holder_that_stops_renewing_frees_the_project_after_the_lease(
    store: SyncStore, redis_url: str
) -> None:
    """A holder on another machine that died: nothing here can see it, the lease ends it."""
    elsewhere = LockHolder("ci", "build-7", 4242, "2026-11-30T08:00:00+00:00", "t")
    lock = store.lock(TITLE, ttl_s=1)
    redis.Redis.from_url(redis_url).set(lock.key, elsewhere.encode(), px=1500)
    with pytest.raises(SyncLockedError, match=r"ci@build-7 \(pid 4242\) since 2026-11-30 08:00"):
        lock.acquire()
    time.sleep(1.7)
    lock.acquire()
    lock.release()


def test_a_dead_holder_on_this_machine_is_replaced_at_once(
    store: SyncStore, redis_url: str
) -> None:
    """What `kill -9` of a sync leaves: its lease, and no process behind it."""
    code = (
        "import redis, sys; from tracetune.sync.ingest.state import SyncStore; "
        f"s = SyncStore(redis.Redis.from_url(sys.argv[1]), 'http://label-studio.test'); "
        f"s.lock({TITLE!r}, ttl_s=300).acquire()"
    )
    subprocess.run([sys.executable, "-c", code, redis_url], check=True, timeout=60)
    lock = store.lock(TITLE, ttl_s=30)
    lock.acquire()
    try:
        assert lock.replaced is not None and lock.replaced.pid != lock.me.pid
    finally:
        lock.release()


def test_break_lock_removes_a_live_holder(store: SyncStore) -> None:
    held = store.lock(TITLE, ttl_s=30)
    held.acquire()
    removed = store.break_lock(TITLE)
    assert removed == held.me.describe()
    mine = store.lock(TITLE, ttl_s=30)
    mine.acquire()
    held.release()  # the old holder releasing later must not free the new holder's lock
    with pytest.raises(SyncLockedError):
        store.lock(TITLE, ttl_s=30).acquire()
    mine.release()
    assert store.break_lock(TITLE) is None


def test_a_holder_knows_when_its_lock_was_broken(store: SyncStore) -> None:
    """Then it checks every batch against Label Studio again, as a sync without Redis does."""
    first = store.lock(TITLE, ttl_s=1.5)
    first.acquire()
    assert first.held
    store.break_lock(TITLE)
    second = store.lock(TITLE, ttl_s=30)
    second.acquire()
    time.sleep(1.0)  # the first holder's next renewal (every half second) finds it gone
    try:
        assert not first.held and second.held
    finally:
        first.release()
        second.release()
