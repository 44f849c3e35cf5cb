"""A command runner: runs the allowed programs that clients ask for.

    python3 examples/cmd_server.py [--host HOST] [--port PORT] [--allow PROGRAM,...]

Serves until interrupted (Ctrl-C).  Binds 127.0.0.1:8767 by default and
prints the address it serves on.  Talk to it with cmd_client.py.

Framing.  TCP carries a stream of bytes, not messages: one send() may arrive
in several recv()s, and two sends in one (the "sticky packet" problem).  So
every message here is a frame: a 4-byte big-endian length, then that many
bytes.  The reader reads exactly 4 bytes, then exactly that length, and
knows where each message ends whatever the network did to it; output of any
size, binary or not, arrives whole.

A request is one frame holding a command line (UTF-8).  The reply is one
frame: a status line, "exit N" with the program's exit status or "refused:
why", then the program's output (stdout and stderr together).  A client may
send several requests on one connection.

Safety.  The command line is split into words (shlex.split where there is
shlex: quotes group words) and run WITHOUT a shell (subprocess, shell=False),
so nothing is globbed or expanded, and it runs only if its program is on the
allow-list, named as it is there: a bare name, looked up on the server's
PATH.  Lines with shell metacharacters (; | & $ ` > < or a newline) are
refused outright, so nobody is misled into thinking a pipe or a redirection
happened.  The default list is echo,date,uname,ls,whoami,pwd,id,uptime;
--allow replaces it.  Allowing a program allows all its options (date -s
sets the clock when run as root): run the server as an unprivileged user.

Runs on CPython and PyPy, with socketse.py beside it or on the path (from
the repository root: PYTHONPATH=. python3 examples/cmd_server.py).  On
MicroPython, which has no subprocess module, it serves but refuses every
command.
"""

import struct
import sys

import socketse

try:
    import subprocess
except ImportError:  # MicroPython
    subprocess = None
try:
    from shlex import split
except ImportError:  # MicroPython: no quoting, words are split on spaces
    def split(line):
        return line.split()

DEFAULT_ALLOW = "echo,date,uname,ls,whoami,pwd,id,uptime"
METACHARACTERS = ";|&$`><\n"
MAX_REQUEST = 64 * 1024  # a command line; a bigger length is a bogus header
RUN_TIMEOUT = 60


def read_frame(rfile, limit):
    """The next frame's bytes; None at the end of the stream."""
    header = rfile.read(4)
    if len(header) < 4:
        return None
    size = struct.unpack(">I", header)[0]
    if size > limit:
        raise ValueError("a frame of %d bytes, over the limit of %d" % (size, limit))
    data = rfile.read(size)
    return data if len(data) == size else None


def write_frame(wfile, data):
    wfile.write(struct.pack(">I", len(data)))
    wfile.write(data)


def refused(why):
    return ("refused: %s\n" % why).encode()


def run(line, allowed):
    """The reply to one command line: a status line and the output."""
    if subprocess is None:
        return refused("this server's Python has no subprocess module: it cannot run programs")
    bad = [c for c in METACHARACTERS if c in line]
    if bad:
        return refused("shell metacharacters are not allowed (there is no shell): %s"
                       % " ".join(repr(c) for c in bad))
    try:
        argv = split(line)
    except ValueError as error:  # shlex: an unclosed quote
        return refused("cannot split the command line: %s" % error)
    if not argv:
        return refused("empty command")
    if argv[0] not in allowed:
        return refused("%r is not an allowed program (allowed: %s)"
                       % (argv[0], ", ".join(sorted(allowed))))
    try:
        done = subprocess.run(argv, shell=False, stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              timeout=RUN_TIMEOUT)
    except subprocess.TimeoutExpired:
        return refused("%s ran longer than %d seconds: stopped" % (argv[0], RUN_TIMEOUT))
    except OSError as error:  # allowed, but not installed here
        return refused("cannot run %s: %s" % (argv[0], error))
    return ("exit %d\n" % done.returncode).encode() + done.stdout


class CommandHandler(socketse.StreamRequestHandler):
    timeout = 300  # an idle connection is closed after that

    def handle(self):
        try:
            while True:
                try:
                    request = read_frame(self.rfile, MAX_REQUEST)
                except ValueError as error:  # not our protocol: say so, hang up
                    write_frame(self.wfile, refused(str(error)))
                    return
                if request is None:
                    return
                line = request.decode("utf-8", "replace")
                reply = run(line, self.server.allowed)
                print("%s: %r -> %s" % (self.client_address[0], line,
                                        reply.split(b"\n", 1)[0].decode()))
                write_frame(self.wfile, reply)
        except OSError:  # timed out, or the client went away
            pass


class CommandServer(socketse.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True  # Ctrl-C need not wait for connected clients

    def __init__(self, address, allowed):
        self.allowed = allowed
        socketse.ThreadingTCPServer.__init__(self, address, CommandHandler)


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
    address = (option("--host", "127.0.0.1"), int(option("--port", "8767")))
    allowed = [name for name in option("--allow", DEFAULT_ALLOW).split(",") if name]
    if subprocess is None:
        print("no subprocess module here: every command will be refused", file=sys.stderr)
    with CommandServer(address, allowed) as server:
        try:  # from here on, so that Ctrl-C is never a traceback
            print("serving on %s port %s" % server.server_address[:2])
            print("allowed: %s" % ", ".join(allowed))
            server.serve_forever()
        except KeyboardInterrupt:
            print("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
