#!/usr/bin/python3
"""The Python hashing handler bench/serve measures three ways. With a path
argument it is an exec handler (one interpreter per file): it hashes the
file and exits 0. Without, it is a serve handler (docs/serve-protocol.md):
one interpreter for every file. Each job costs the same Python work either
way: open, read, sha256, and (serve) one JSON line each way.
"""
import hashlib
import json
import os
import sys


def digest(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


if len(sys.argv) > 1:
    digest(os.fsencode(sys.argv[1]))
    sys.exit(0)

jobs = os.fdopen(3, "r", encoding="utf-8", errors="surrogateescape")
answers = os.fdopen(4, "w", encoding="utf-8", errors="surrogateescape")
answers.write('{"ready": true}\n')
answers.flush()
for line in jobs:
    job = json.loads(line)
    answers.write(json.dumps({"id": job["id"], "ok": True,
                              "result": {"sha256": digest(os.fsencode(job["path"]))}}) + "\n")
    answers.flush()
