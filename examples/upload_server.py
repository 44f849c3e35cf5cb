"""A file upload server that writes only inside one directory.

    python3 examples/upload_server.py --dir DIR [--host HOST] [--port PORT] [--max-size BYTES]

Serves until interrupted (Ctrl-C).  Binds 127.0.0.1:8768 by default and
prints the address it serves on.  Send files with upload_client.py.

The protocol, one upload per connection:

    client: {"name": "report.pdf", "size": 12345}\\n   (a JSON header line)
    server: go ahead\\n        or   refused: why\\n   (and the connection ends)
    client: the 12345 bytes
    server: saved report.pdf (12345 bytes)\\n   or   refused: why\\n

The server answers the header before any file byte is sent, so a refused
upload costs nothing to send.

What it refuses, each with a one-line reason, serving on afterwards:

- names that are not a plain file name: empty, "." or "..", absolute paths,
  names with a path separator (no subdirectories), names starting with "."
  (hidden, and where this server keeps its temporary files), names with
  control characters, names over 255 bytes;
- a name that already exists in DIR, whatever it is (files are never
  overwritten; a symbolic link there, maybe pointing outside DIR, is never
  followed);
- a size over --max-size (default 100 MB).

A file is written to a temporary file in DIR and given its name only when
every byte has arrived, so an upload that fails or is cut short leaves
nothing behind.  The name is given with a hard link, which fails rather than
replace a file of that name that appeared meanwhile (rename would replace
it), so DIR must be on a file system with hard links.  Saved files are
readable by the server's user only (mode 600, as tempfile makes them).

CPython and PyPy, with socketse.py beside it or on the path (from the
repository root: PYTHONPATH=. python3 examples/upload_server.py --dir /tmp/up).
"""

import errno
import json
import os
import sys
import tempfile

import socketse

TEMPORARY_PREFIX = ".upload-"
CHUNK = 64 * 1024


class Refused(Exception):
    pass


def check_name(name):
    if not isinstance(name, str) or not name:
        raise Refused("the name must be a non-empty string")
    if name.startswith("/") or os.path.isabs(name):
        raise Refused("absolute paths are not allowed: %r" % name)
    if ".." in name.replace("\\", "/").split("/"):
        raise Refused("'..' (the parent directory) is not allowed: %r" % name)
    if name == ".":
        raise Refused("'.' is not a file name")
    if "/" in name or "\\" in name or os.sep in name:
        raise Refused("the name must not contain a path separator (no subdirectories): %r"
                      % name)
    if name.startswith("."):
        raise Refused("names starting with '.' are not allowed: %r" % name)
    if any(ord(c) < 32 for c in name):  # NUL, newlines: trouble in logs and listings
        raise Refused("the name must not contain control characters: %r" % name)
    try:
        encoded = name.encode("utf-8")
    except UnicodeError:  # a lone surrogate, which JSON allows
        raise Refused("the name is not valid Unicode: %r" % name)
    if len(encoded) > 255:
        raise Refused("the name is longer than 255 bytes")


def parse_header(line, max_size):
    """(name, size) from the header line, or Refused."""
    if not line.endswith(b"\n"):
        raise Refused("the header must be one line of JSON, under 4 KB")
    try:
        header = json.loads(line.decode("utf-8"))
        name, size = header["name"], header["size"]
    except (ValueError, TypeError, KeyError):
        raise Refused('bad header: expected {"name": ..., "size": ...}')
    check_name(name)
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise Refused("the size must be a whole number of bytes")
    if size > max_size:
        raise Refused("%d bytes is over the limit of %d bytes" % (size, max_size))
    return name, size


class UploadHandler(socketse.StreamRequestHandler):
    timeout = 30  # a client that stalls mid-file is cut off, its upload dropped

    def handle(self):
        directory = self.server.directory
        try:
            name, size = parse_header(self.rfile.readline(4096), self.server.max_size)
            target = os.path.join(directory, name)
            if os.path.islink(target):  # maybe to a file outside: never followed
                raise Refused("%s is a symbolic link: not writing through it" % name)
            if os.path.lexists(target):
                raise Refused("%s already exists: not overwriting it" % name)
            self.reply("go ahead")
            self.receive(target, size)
        except Refused as why:
            self.log("refused: %s" % why)
            self.reply("refused: %s" % why)
            return
        except OSError as error:  # timed out or reset before the file began
            self.log("connection failed: %s" % error)
            return
        self.log("saved %s (%d bytes)" % (name, size))
        self.reply("saved %s (%d bytes)" % (name, size))

    def receive(self, target, size):
        fd, temporary = tempfile.mkstemp(prefix=TEMPORARY_PREFIX, dir=self.server.directory)
        try:
            with os.fdopen(fd, "wb") as file:
                left = size
                while left:
                    chunk = self.rfile.read(min(left, CHUNK))
                    if not chunk:
                        raise Refused("the upload ended after %d of %d bytes"
                                      % (size - left, size))
                    file.write(chunk)
                    left -= len(chunk)
            try:
                os.link(temporary, target)  # unlike rename, never replaces a file
            except OSError as error:
                if error.errno == errno.EEXIST:
                    raise Refused("%s already exists: not overwriting it"
                                  % os.path.basename(target))
                raise
        except OSError as error:  # a timeout, a reset, a full disk
            raise Refused("the upload failed: %s" % error)
        finally:
            os.remove(temporary)

    def reply(self, line):
        try:
            self.wfile.write(line.encode() + b"\n")
        except OSError:
            pass  # the client has gone; the log has the reason

    def log(self, message):
        print("%s: %s" % (self.client_address[0], message))


class UploadServer(socketse.ThreadingTCPServer):
    allow_reuse_address = True
    # Not daemon threads: Ctrl-C waits (at most UploadHandler.timeout) for
    # uploads in progress, so that each removes its temporary file.

    def __init__(self, address, directory, max_size):
        self.directory = os.path.realpath(directory)
        self.max_size = max_size
        socketse.ThreadingTCPServer.__init__(self, address, UploadHandler)


def remove_leftovers(directory):
    """Temporary files of a server that was killed mid-upload."""
    for entry in os.listdir(directory):
        if entry.startswith(TEMPORARY_PREFIX):
            os.remove(os.path.join(directory, entry))


def option(name, default):
    if name in sys.argv:
        index = sys.argv.index(name)
        value = sys.argv[index + 1]
        del sys.argv[index:index + 2]
        return value
    return default


def usage():
    # MicroPython drops docstrings as it compiles: there, read ours from the file.
    return globals().get("__doc__") or open(__file__).read().split('"""')[1]


def main():
    if "--help" in sys.argv or "-h" in sys.argv:
        print(usage())
        return 0
    directory = option("--dir", None)
    if directory is None or not os.path.isdir(directory):
        print("--dir must name an existing directory (see --help)", file=sys.stderr)
        return 2
    address = (option("--host", "127.0.0.1"), int(option("--port", "8768")))
    max_size = int(option("--max-size", str(100 * 1024 * 1024)))
    remove_leftovers(directory)
    with UploadServer(address, directory, max_size) as server:
        try:  # from here on, so that Ctrl-C is never a traceback
            print("serving on %s port %s" % server.server_address[:2])
            print("saving to %s, up to %d bytes a file" % (server.directory, max_size))
            server.serve_forever()
        except KeyboardInterrupt:
            print("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
