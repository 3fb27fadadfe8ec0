#!/bin/bash
# A dropq serve handler in shell (docs/serve-protocol.md): counts each
# file's lines and answers with the count. Needs jq.
#
#   handler:
#     serve: ["/usr/share/doc/dropq/examples/serve_lines.sh"]
#
# jq turns a name's bytes that are not UTF-8 into U+FFFD: for inboxes with
# such names write the handler in a language that keeps them (Python's
# surrogateescape, as in serve_sha256.py).
set -u

echo '{"ready": true}' >&4

# One job per line on fd 3; EOF (read fails) is dropqd asking us to exit.
while IFS= read -r job <&3; do
  id=$(jq -r .id <<<"$job")
  path=$(jq -r .path <<<"$job")
  if lines=$(wc -l <"$path" 2>/dev/null); then
    jq -cn --arg id "$id" --argjson n "$lines" '{id: $id, ok: true, result: {lines: $n}}' >&4
  else
    jq -cn --arg id "$id" --arg e "cannot read $path" '{id: $id, ok: false, error: $e}' >&4
  fi
done
