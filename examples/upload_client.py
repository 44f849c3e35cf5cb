"""A client for upload_server.py: uploads one file, showing its progress.

    python3 examples/upload_client.py [--host HOST] [--port PORT] [--name NAME] FILE

The file is saved on the server under NAME, by default the file's own name.
Progress goes to stderr as a percentage; the server's last word ("saved
...") to stdout.  A refusal is printed to stderr, and the exit status is
then 1.  See upload_server.py --help for the protocol.
"""

import json
import os
import socket
import sys

CHUNK = 64 * 1024


def option(name, default):
    if name in sys.argv:
        index = sys.argv.index(name)
        value = sys.argv[index + 1]
        del sys.argv[index:index + 2]
        return value
    return default


def upload(sock, file, size, name):
    """The server's last line; raises OSError if the connection fails."""
    with sock.makefile("rb") as replies:
        sock.sendall(json.dumps({"name": name, "size": size}).encode() + b"\n")
        answer = replies.readline().decode().strip()
        if answer != "go ahead":
            return answer or "refused: the server closed the connection"
        sent, shown = 0, -1
        while sent < size:
            chunk = file.read(min(CHUNK, size - sent))
            if not chunk:
                raise OSError("the file shrank while being sent")
            sock.sendall(chunk)
            sent += len(chunk)
            percent = 100 * sent // size
            if percent != shown:  # only when it changes: a terminal is slow
                sys.stderr.write("\r%s: %3d%%" % (name, percent))
                shown = percent
        sys.stderr.write("\n" if size else "%s: 100%%\n" % name)
        return replies.readline().decode().strip() or "refused: no answer from the server"


def usage():
    # MicroPython drops docstrings as it compiles: there, read ours from the file.
    return globals().get("__doc__") or open(__file__).read().split('"""')[1]


def main():
    if "--help" in sys.argv or "-h" in sys.argv:
        print(usage())
        return 0
    host, port = option("--host", "127.0.0.1"), int(option("--port", "8768"))
    name = option("--name", None)
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    path = sys.argv[1]
    try:
        with open(path, "rb") as file:
            size = os.fstat(file.fileno()).st_size
            with socket.create_connection((host, port), timeout=60) as sock:
                answer = upload(sock, file, size, os.path.basename(path) if name is None else name)
    except OSError as error:  # no such file, refused, cut off: a line, not a traceback
        print(error, file=sys.stderr)
        return 1
    if answer.startswith("saved "):
        print(answer)
        return 0
    print(answer, file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
