#!/usr/bin/python3
"""A serve handler for dropq's tests (docs/serve-protocol.md), standard
library only. For each job it appends one line to $SERVE_LOG:

    start <hex of the name's bytes> <pid> <unix time>
    end   <hex of the name's bytes> <pid> <unix time> <hex of the path's bytes>

and answers with the file's sha256. What it does otherwise depends on the
file name's start:
    crash-    exits with status 3 mid-job
    hang-     sleeps past any timeout
    garbage-  writes a line that is not JSON on fd 4
    flood-    writes 100 MB on fd 4 with no newline
    print-    prints 1,000 lines on stdout and 3 on stderr, then answers
    fail-     answers ok: false, permanent
    echo-     answers ok: false with the name in the error, and permanent
Options: --sleep S (each job takes S seconds), --leak MB (each job keeps
MB more memory), --ready-after S (the ready line comes S seconds late).
"""
import hashlib
import json
import os
import sys
import time

args = sys.argv[1:]
opt = {k: float(v) for k, v in zip(args[::2], args[1::2])}
jobs = os.fdopen(3, "r", encoding="utf-8", errors="surrogateescape")
answers = os.fdopen(4, "w", encoding="utf-8", errors="surrogateescape")
log = open(os.environ["SERVE_LOG"], "ab", buffering=0)
leaked = []


def answer(reply):
    answers.write(json.dumps(reply) + "\n")
    answers.flush()


time.sleep(opt.get("--ready-after", 0))
answer({"ready": True})
for line in jobs:
    job = json.loads(line)
    name = os.fsencode(job["relpath"])
    base = os.fsencode(job["name"])
    log.write(b"start %s %d %.6f\n" % (name.hex().encode(), os.getpid(), time.time()))
    if base.startswith(b"crash-"):
        os._exit(3)
    if base.startswith(b"hang-"):
        time.sleep(3600)
    if base.startswith(b"garbage-"):
        answers.write("this is not json\n")
        answers.flush()
        time.sleep(3600)
    if base.startswith(b"flood-"):
        chunk = "x" * (1 << 20)
        for _ in range(100):
            answers.write(chunk)
        answers.flush()
        time.sleep(3600)
    if base.startswith(b"print-"):
        for i in range(1000):
            print("progress", i, "of", job["id"], flush=True)
        for i in range(3):
            print("warning", i, file=sys.stderr, flush=True)
    if "--leak" in opt:
        leaked.append(bytearray(int(opt["--leak"] * (1 << 20))))
    time.sleep(opt.get("--sleep", 0))
    with open(os.fsencode(job["path"]), "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    log.write(b"end %s %d %.6f %s\n" % (name.hex().encode(), os.getpid(), time.time(),
                                       os.fsencode(job["path"]).hex().encode()))
    if base.startswith(b"fail-"):
        answer({"id": job["id"], "ok": False, "error": "cannot use this file", "permanent": True})
    elif base.startswith(b"echo-"):
        answer({"id": job["id"], "ok": False, "error": "refused " + job["name"], "permanent": True})
    else:
        answer({"id": job["id"], "ok": True,
                "result": {"sha256": digest, "name": job["name"], "attempt": job["attempt"]}})
