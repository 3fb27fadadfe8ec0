#!/usr/bin/python3
"""A dropq serve handler (docs/serve-protocol.md): hashes each file it is
given and answers with the digest. Standard library only.

    handler:
      serve: ["/usr/bin/python3", "/usr/share/doc/dropq/examples/serve_sha256.py"]

Jobs come one per line on fd 3, answers go one per line to fd 4; stdout and
stderr are free for logging (dropqd logs them with the job id).
"""
import hashlib
import json
import os
import sys

jobs = os.fdopen(3, "r", encoding="utf-8", errors="surrogateescape")
answers = os.fdopen(4, "w", encoding="utf-8", errors="surrogateescape")


def answer(reply):
    # ensure_ascii (the default) writes a name's stray bytes as \udcXX escapes.
    answers.write(json.dumps(reply) + "\n")
    answers.flush()


# Load what the jobs need here (a model, a library), then say so.
answer({"ready": True})

for line in jobs:  # EOF on fd 3: dropqd asks us to exit
    job = json.loads(line)
    try:
        h = hashlib.sha256()
        # os.fsencode gives back the name's bytes, whatever they are.
        with open(os.fsencode(job["path"]), "rb") as f:
            for block in iter(lambda: f.read(1 << 16), b""):
                h.update(block)
        answer({"id": job["id"], "ok": True,
                "result": {"sha256": h.hexdigest(), "size": job["size"]}})
    except FileNotFoundError as e:
        answer({"id": job["id"], "ok": False, "error": str(e), "permanent": True})
    except OSError as e:
        answer({"id": job["id"], "ok": False, "error": str(e)})
