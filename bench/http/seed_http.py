"""The pattern dropq comes from, sending files to an HTTP API: a watchdog
observer feeds an asyncio.Queue, CONCURRENCY consumer tasks PUT each file
with aiohttp under a semaphore, and each job is journaled in Redis as the
shared seed-asyncio baseline does (LPUSH to a pending list on enqueue; on
completion one MULTI pipeline LREMs it and LPUSHes it onto a capped done list).

Environment: INBOX, URL (the sink's base URL; the file name is appended),
REDIS_URL, CONCURRENCY. Runs until killed. Debian's python3-aiohttp,
python3-watchdog and python3-redis.
"""
import asyncio
import os
import urllib.parse

import aiohttp
import redis.asyncio as aioredis
from watchdog.events import FileSystemEventHandler
from watchdog.observers.inotify import InotifyObserver

INBOX = os.path.abspath(os.environ["INBOX"])
URL = os.environ["URL"].rstrip("/")
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
CONCURRENCY = int(os.environ.get("CONCURRENCY", "16"))
PENDING, DONE = "seed:pending", "seed:done"


class Handler(FileSystemEventHandler):
    """Runs in the watchdog thread; hands paths to the event loop thread-safely."""

    def __init__(self, loop, submit):
        self.loop, self.submit = loop, submit

    def on_closed(self, event):  # IN_CLOSE_WRITE
        if not event.is_directory:
            self.loop.call_soon_threadsafe(self.submit, event.src_path)

    def on_moved(self, event):  # IN_MOVED_TO
        if not event.is_directory and os.path.dirname(event.dest_path) == INBOX:
            self.loop.call_soon_threadsafe(self.submit, event.dest_path)


async def main():
    loop = asyncio.get_running_loop()
    r = aioredis.from_url(REDIS_URL)
    await r.ping()
    q = asyncio.Queue(maxsize=1000)
    sem = asyncio.Semaphore(CONCURRENCY)
    pending_puts = set()

    async def enqueue(path):
        await r.lpush(PENDING, path)
        await q.put(path)

    def submit(path):
        t = asyncio.ensure_future(enqueue(path))
        pending_puts.add(t)
        t.add_done_callback(pending_puts.discard)

    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def consumer():
            while True:
                path = await q.get()
                try:
                    async with sem:
                        url = URL + "/" + urllib.parse.quote(os.path.basename(path))
                        with open(path, "rb") as f:
                            async with session.put(url, data=f) as resp:
                                await resp.read()
                                if resp.status // 100 != 2:
                                    print(f"status {resp.status} for {path}", flush=True)
                    async with r.pipeline(transaction=True) as p:
                        p.lrem(PENDING, 1, path)
                        p.lpush(DONE, path)
                        p.ltrim(DONE, 0, 9999)
                        await p.execute()
                except Exception as e:  # keep going, as the seed does
                    print(f"failed {path}: {e!r}", flush=True)
                finally:
                    q.task_done()

        tasks = [asyncio.create_task(consumer()) for _ in range(CONCURRENCY)]
        observer = InotifyObserver()
        observer.schedule(Handler(loop, submit), INBOX, recursive=False)
        observer.start()
        print("ready", flush=True)
        try:
            await asyncio.gather(*tasks)
        finally:
            observer.stop()


if __name__ == "__main__":
    asyncio.run(main())
