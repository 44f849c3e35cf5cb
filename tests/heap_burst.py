"""A burst of clients against a ThreadingTCPServer in a small MicroPython
heap (issue 18, point 1), written without pytest so that MicroPython runs
it; tests/test_heap_load.py drives it.

The server is ThreadingTCPServer with its defaults; its handler reads a
line, sleeps 0.3 s and writes the line back, so that many requests are in
the heap at once.  Two ways to run it:

    micropython -X heapsize=64k -m heap_burst serve [max_threads=N] [reuse_threads=1]

  The unix port, holding the server alone (the clients are another
  process: CPython, through burst() below).  Prints "port N" once
  listening; a line on stdin then calls shutdown() and server_close(),
  and the last line is "stopped {...}": the server's figures.  Before
  that, the line "fill" takes every 1 KB block left in the heap, as
  other code in the program might, and prints "filled, ...".

    micropython-lwip-threads -X heapsize=N -m heap_burst [--board esp32] burst COUNT AT_ONCE SECONDS

  A board profile, whose network lives inside the process: the server
  runs in a thread and COUNT clients run here, in this one thread, at
  most AT_ONCE connected at a time (a board's lwIP holds only a few
  connections, and here both ends share it); those left after SECONDS
  count as hung.  Then a fresh client, then shutdown() and
  server_close().  Prints "burst {...}" (what the clients got), "fresh
  client answered" (or "unanswered"), then "stopped {...}".

On a board profile the clients share the server's heap, so they are
lean: non-blocking sockets in one thread, their lists sized by AT_ONCE
and made before the burst, and a MemoryError or a full stack on their
side only puts a client off.  Whatever hangs beyond the bounds here is
the caller's to end: it bounds the whole process, and reads a crash in
the exit status.
"""

import gc
import sys
import time

# The build's own network modules, taken before --board replaces them: the
# clients stand for other hosts, which a board's quirks do not touch.
import errno as net_errno
import select as net_select
import socket as net_socket

LINE_PAUSE = 0.3  # the handler's sleep between reading and answering

# What a client's connection came to: "answered" (its own line, then the
# end of the stream), "closed" (the end of the stream, nothing received),
# "reset" (an error, nothing received): those three are what the server
# may do.  The rest are failures: "cut" (part of its line, then closed),
# "wrong" (any other bytes), "refused" (nothing listening), "hung" (still
# open at the deadline), "unstarted" (never connected by then).
OUTCOMES = ("answered", "closed", "reset", "cut", "wrong", "refused", "hung", "unstarted")
FAILURES = OUTCOMES[3:]


def _ms():
    """A millisecond clock; only differences count (ticks_ms wraps)."""
    if hasattr(time, "ticks_ms"):
        return time.ticks_ms()
    return int(time.monotonic() * 1000)


def _since(start):
    if hasattr(time, "ticks_diff"):
        return time.ticks_diff(time.ticks_ms(), start)
    return _ms() - start


def _number(error):
    number = error.args[0] if error.args else None
    return number if isinstance(number, int) else None


def burst(port, count, at_once, seconds, net=None, first=b"client %d\n", hang_up=False):
    """Connect `count` clients to 127.0.0.1:port, client i sending the
    line first % i and reading until the server ends the connection, at
    most at_once connected at a time; give up on those left after
    `seconds`.  Returns {outcome: count, "seconds": taken, "most at once":
    peak}.  net is (socket, select, errno) modules, this interpreter's by
    default.  With hang_up, a client that sees its whole line arrive (by
    peeking) hangs up at once, leaving it unread, which resets the
    connection: see burst_here()."""
    socket_module, select_module, errno_module = net or (net_socket, net_select, net_errno)
    address = socket_module.getaddrinfo("127.0.0.1", port)[0][-1]
    # Waiting, by number: these names differ between builds, and CPython
    # raises BlockingIOError, a kind of OSError, for them.
    later = (getattr(errno_module, "EAGAIN", 11), getattr(errno_module, "EINPROGRESS", 115),
             getattr(errno_module, "EALREADY", 114), getattr(errno_module, "EWOULDBLOCK", 11))
    no_room = (getattr(errno_module, "ENOMEM", 12), getattr(errno_module, "ENOBUFS", 105))
    refused = getattr(errno_module, "ECONNREFUSED", 111)
    peek = getattr(socket_module, "MSG_PEEK", 2)
    readable, writable = select_module.POLLIN, select_module.POLLOUT
    # CPython's poll() gives back descriptors, MicroPython's the objects.
    by_descriptor = sys.implementation.name != "micropython"
    # One slot per connection open at a time, not per client: on a board
    # the clients' lists are heap the server does not get.
    socks = [None] * at_once
    keys = [None] * at_once
    lines = [b""] * at_once
    got = [b""] * at_once
    sending = bytearray(at_once)
    counts = {}
    for name in OUTCOMES:
        counts[name] = 0
    poller = select_module.poll()
    started = _ms()
    deadline = int(seconds * 1000)
    next_client = connected = peak = finished = 0

    def finish(i, outcome=None):
        line, received = lines[i], got[i]
        if outcome is None or (outcome == "reset" and received):
            if received == line:
                outcome = "answered"
            elif not received:
                outcome = outcome or "closed"
            elif line.startswith(received):
                outcome = "cut"
            else:
                outcome = "wrong"
        counts[outcome] += 1
        try:
            poller.unregister(socks[i])
        except (OSError, KeyError, ValueError):
            pass
        socks[i].close()
        socks[i] = keys[i] = None
        lines[i] = got[i] = b""

    while finished < count and _since(started) < deadline:
        # Connect more, while the stack and the heap let us.
        while next_client < count and connected < at_once:
            i = socks.index(None)
            try:
                lines[i] = first % next_client
                # Positional arguments: MicroPython ignores keywords here.
                sock = socket_module.socket(socket_module.AF_INET, socket_module.SOCK_STREAM)
            except (OSError, MemoryError):  # no room on this side for now
                break
            try:
                sock.setblocking(False)
                try:
                    sock.connect(address)
                except OSError as error:
                    if _number(error) not in later:
                        raise
                poller.register(sock, writable)
            except MemoryError:
                sock.close()
                break
            except OSError as error:
                sock.close()
                if _number(error) in no_room:
                    break
                counts["refused" if _number(error) == refused else "reset"] += 1
                next_client += 1
                finished += 1
                continue
            socks[i] = sock
            keys[i] = sock.fileno() if by_descriptor else sock
            sending[i] = 1
            next_client += 1
            connected += 1
            if connected > peak:
                peak = connected
        try:
            events = poller.poll(20)
        except MemoryError:
            time.sleep(0.01)
            continue
        if not events and connected < at_once and next_client < count:
            time.sleep(0.005)  # wait for the stack to free a connection
        for who, _ in events:
            try:
                i = keys.index(who)
            except ValueError:  # finished by an earlier event of this round
                continue
            sock = socks[i]
            try:
                if sending[i]:
                    sent = sock.send(lines[i])
                    if sent != len(lines[i]):  # a few bytes into an empty buffer:
                        raise OSError(getattr(errno_module, "EIO", 5))  # never short
                    sending[i] = 0
                    poller.modify(sock, readable)
                    continue
                if hang_up and not got[i] and sock.recv(64, peek) == lines[i]:
                    got[i] = lines[i]
                    data = b""  # as if the server had ended it
                else:
                    data = sock.recv(64)
            except MemoryError:
                continue  # the heap is full: this client tries again later
            except OSError as error:
                if _number(error) in later:
                    continue
                if sending[i] and _number(error) == refused:
                    finish(i, "refused")
                else:
                    finish(i, "reset")
            else:
                if data:
                    got[i] += data
                    continue
                finish(i)
            connected -= 1
            finished += 1
    for i in range(at_once):
        if socks[i] is not None:
            finish(i, "hung")
    counts["unstarted"] += count - next_client
    counts["seconds"] = _since(started) / 1000
    counts["most at once"] = peak
    return counts


def answered(port, seconds, net=None, hang_up=False):
    """Whether a fresh client gets its line back, trying for up to
    seconds (the server may still be winding the burst down)."""
    started = _ms()
    while _since(started) < int(seconds * 1000):
        if burst(port, 1, 1, 5.0, net, b"fresh client %d\n", hang_up)["answered"]:
            return True
        time.sleep(0.1)
    return False


# ---------------------------------------------------------------------------
# The server

def make_server(settings=()):
    """ThreadingTCPServer, with its defaults but for settings ("name=int"
    strings: max_threads=4, reuse_threads=1), on 127.0.0.1 and a random
    port; and the figures its handler keeps."""
    import _thread

    from errno import EADDRINUSE  # the board's number, once --board ran

    import socketse
    from runner import random_port

    # Every key made now, values ints only, so that counting allocates
    # nothing on a full heap; one lock for all, made now too.
    figures = {"requests": 0, "in flight": 0, "most in flight": 0,
               "free heap at start": 0, "threads left": 0, "free heap": 0}
    lock = _thread.allocate_lock()

    class Echo(socketse.StreamRequestHandler):
        def handle(self):
            line = self.rfile.readline()
            with lock:
                figures["requests"] += 1
                figures["in flight"] += 1
                if figures["in flight"] > figures["most in flight"]:
                    figures["most in flight"] = figures["in flight"]
            try:
                time.sleep(LINE_PAUSE)
                self.wfile.write(line)
            finally:
                with lock:
                    figures["in flight"] -= 1

    Server = socketse.ThreadingTCPServer
    if settings:
        class Server(socketse.ThreadingTCPServer):
            pass

        for setting in settings:
            name, value = setting.split("=")
            setattr(Server, name, int(value))
    for attempt in range(50):  # MicroPython can't tell which port port 0 chose
        try:
            server = Server(("127.0.0.1", random_port()), Echo)
            break
        except OSError as error:
            if attempt == 49 or _number(error) != EADDRINUSE:
                raise
    gc.collect()
    # What the requests (and on a board the clients) have, before the first.
    figures["free heap at start"] = gc.mem_free()
    return server, figures


def stop(server, figures):
    """shutdown() and server_close(), then the server's figures."""
    server.shutdown()
    server.server_close()
    gc.collect()
    # Requests counted busy (what the stdlib's tests read as len(_threads)):
    # none may be left once server_close() has waited for them.
    figures["threads left"] = len(server._threads)
    figures["free heap"] = gc.mem_free()
    print("stopped", figures)


def fill_heap():
    """Take every block of 1 KB the heap has left (the heap a request
    needs to be let in), keeping smaller holes; return what was taken."""
    taken = [None] * 64
    for i in range(len(taken)):
        try:
            taken[i] = bytearray(1024)
        except MemoryError:
            break
    return taken


def serve(settings):
    server, figures = make_server(settings)
    import _thread
    _thread.start_new_thread(server.serve_forever, ())
    print("port", server.server_address[1])
    # The caller's clients are done when it writes a line (or goes): then
    # stop, from this thread, as a program stops its server.  The line
    # "fill" first fills the heap, until the next line.
    while sys.stdin.readline() == "fill\n":
        taken = fill_heap()
        print("filled, threads parked:", len(server._threads._parked))
    taken = None
    stop(server, figures)


def burst_here(count, at_once, seconds):
    server, figures = make_server()
    from runner import start_thread
    start_thread(server.serve_forever)
    port = server.server_address[1]
    # The clients hang up on their reply instead of reading to its end:
    # a connection that ends in order leaves lwIP's control block of the
    # side that closed first in TIME_WAIT (two minutes), and with the few
    # a board has all taken, the next socket() frees one, outside the
    # stack's lock (modlwip calls tcp_new() unlocked).  With this build's
    # threads, that corrupted lwIP's list of connections about one run
    # in 25, and the process spun for ever.  A reset leaves no TIME_WAIT.
    # The server still ends every request: server_close() waits for them.
    # Each result is printed as soon as it is known: should the process
    # hang later, its caller still learns how far it came.
    print("burst", burst(port, count, at_once, seconds, hang_up=True))
    print("fresh client", "answered" if answered(port, 10.0, hang_up=True) else "unanswered")
    stop(server, figures)


def main():
    from runner import take_options
    take_options()
    if sys.argv[1:2] == ["serve"]:
        serve(sys.argv[2:])
    elif sys.argv[1:2] == ["burst"]:
        burst_here(int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]))
    else:
        print(__doc__)
        sys.exit(2)


if __name__ == "__main__":
    main()
