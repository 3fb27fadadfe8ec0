#!/usr/bin/python3
"""A sentinel whose answer is stale: it names ADDR:PORT as the primary of any
master, as a sentinel cut off from the others can. Usage:
fake_sentinel.py LISTEN_PORT HOST PORT. Answers AUTH and PING with +OK/+PONG,
SENTINEL get-master-addr-by-name with [HOST, PORT], anything else with an error."""
import socket
import sys
import threading


def serve(conn, host, port):
    f = conn.makefile("rb")
    try:
        while True:
            line = f.readline()
            if not line:
                return
            n = int(line[1:])
            args = []
            for _ in range(n):
                size = int(f.readline()[1:])
                args.append(f.read(size + 2)[:-2].decode(errors="replace"))
            cmd = args[0].upper() if args else ""
            if cmd == "SENTINEL":
                out = "*2\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(host), host, len(port), port)
            elif cmd == "PING":
                out = "+PONG\r\n"
            elif cmd == "AUTH":
                out = "+OK\r\n"
            else:
                out = "-ERR unknown command\r\n"
            conn.sendall(out.encode())
    finally:
        conn.close()


def main():
    listen, host, port = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", listen))
    s.listen(16)
    print("ready", flush=True)
    while True:
        conn, _ = s.accept()
        threading.Thread(target=serve, args=(conn, host, port), daemon=True).start()


if __name__ == "__main__":
    main()
