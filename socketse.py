"""socketse: the socketserver programming model in one portable file.

socketse is a drop-in for the standard library's ``socketserver`` (as of
CPython 3.13) that runs wherever Python can open a socket: CPython 3.6 and
later, PyPy, MicroPython (its unix port and the boards: ESP32, Pico W,
ESP8266, stm32) and CircuitPython, whose sockets come from a socket pool.
It imports only ``socket`` (or, without one, CircuitPython's ``socketpool``
and ``wifi``), ``os`` and ``sys`` at module level; ``select``, ``_thread``
and the rest are used where they exist and done without where they don't.
Copy this file next to your program, freeze it into a board's firmware
(manifest.py), or::

    import socketse as socketserver

Usage is the stdlib's: derive a handler from BaseRequestHandler (or
StreamRequestHandler / DatagramRequestHandler) and define handle(); pass its
class to a server; call serve_forever()::

    class Echo(socketse.StreamRequestHandler):
        def handle(self):
            self.wfile.write(self.rfile.readline())

    with socketse.ThreadingTCPServer(("127.0.0.1", 8000), Echo) as server:
        server.serve_forever()

The classes are the stdlib's: BaseServer (the socket-free serving loop),
TCPServer (the base of every socket server), UDPServer, UnixStreamServer and
UnixDatagramServer where AF_UNIX exists; the ThreadingMixIn and, where
os.fork exists, ForkingMixIn; the handlers; and the ready-made combinations
such as ThreadingTCPServer.  ``__all__`` lists those this platform has.

Where socketse differs from the stdlib, it is on purpose:

- shutdown() wakes serve_forever() at once instead of after up to
  poll_interval seconds (through a datagram to itself on the loopback
  address, where select exists), and a handler of a single-threaded
  server, or a signal handler in the serving thread, may call it without
  deadlocking: the loop ends after that request.  A second
  serve_forever() on a serving server raises RuntimeError instead of
  running a second loop.
- ThreadingMixIn can bound its handler threads (max_threads), and where
  locks wait with a timeout (CPython, PyPy) reuses them (reuse_threads),
  keeping at most 16 idle ones for at most a minute.  Where a thread or
  the heap for one more request cannot be had (a board), a request waits
  for a busy thread as at max_threads, instead of failing.  Handler
  threads are ``_thread`` threads, which server_close() waits for
  (block_on_close), unless called by one of them, and interpreter exit
  does not.  The mix-ins have no server_close() of their own:
  BaseServer's waits for their handlers, as MicroPython's super() cannot
  chain through mix-ins.
- An IPv6 literal address such as ("::1", 0) works on a class that did not
  choose an address family; request_queue_size is socket.SOMAXCONN (32
  where there is none), not 5.
- StreamRequestHandler.timeout bounds a whole unbuffered wfile.write(), as
  it bounds the stdlib's sendall(), and its request_timeout, socketse's
  own, bounds a whole request; where sockets cannot half-close, the
  input a handler left unread is read before closing, so that the client
  sees the end of the stream rather than a reset.
- When accept() fails for want of descriptors, the loop pauses instead of
  spinning; StreamRequestHandler.finish() never raises for a peer that left.
- On MicroPython, addresses are translated to and from the raw form its
  sockets use: client_address is a (host, port) tuple, which the server's
  socket takes back in sendto().
- TCPServer.socket_pool is what sockets are made with: the socket module,
  or on CircuitPython socketpool.SocketPool(wifi.radio); a program with a
  pool of its own (WIZnet, ESP32SPI) sets it.
- Without ``select``, serving waits in accept() with a timeout; without
  ``_thread``, everything but ThreadingMixIn works.

Tested on CPython 3.6 to 3.13, PyPy 3.9, MicroPython 1.29's unix port,
MicroPython with the boards' own socket layers (lwIP, ESP32's) and frozen
into firmware, and CircuitPython 10's unix port with a socket pool
re-created after its raspberrypi and espressif ports; see README.md.
"""

__version__ = "1.0.0"

import os
import sys

try:
    import socket
except ImportError:  # CircuitPython: sockets come from a pool (TCPServer.socket_pool)
    try:  # a native wifi board's own
        import socketpool, wifi  # type: ignore[import-not-found]
        socket = socketpool.SocketPool(wifi.radio)
    except ImportError:  # a pool of the program's own (WIZnet, ESP32SPI), set later
        class socket:  # type: ignore[no-redef]
            """The usual numbers, until a program sets its pool."""
            AF_INET, SOCK_STREAM, SOCK_DGRAM = 2, 1, 2

try:  # MicroPython's compiler drops code under a false const() altogether
    from micropython import const  # type: ignore[import-not-found]
except ImportError:
    const = bool  # only ever given a bool here

# Types are inline annotations, in strings: they read as Python and mypy
# --strict checks them; CPython 3.6+ and PyPy never evaluate the strings, and
# MicroPython's compiler drops annotations altogether.
TYPE_CHECKING = const(False)  # mypy takes it as True; typing is never imported
del const
if TYPE_CHECKING:
    from typing import Any, Callable, Optional, Tuple

try:
    import select
except ImportError:  # serving then waits in accept()/recvfrom() with a timeout
    select = None  # type: ignore[assignment]

try:
    import _thread
except ImportError:  # a single-threaded build: ThreadingMixIn cannot work
    _thread = None  # type: ignore[assignment]

# ---------------------------------------------------------------------------
# The portability layer: each piece gives one thing that some builds lack.
# ---------------------------------------------------------------------------

# MicroPython's unix port has socket.sockaddr() because its sockets take and
# give raw sockaddr bytes; elsewhere addresses are (host, port) and paths.
# The last address translated, both ways, as (readable, raw, its host raw):
# a reply mostly goes back to where the request came from, the next request
# mostly comes from the same host, and translating costs more than the rest
# of a datagram's round on MicroPython.
_last_address: "Any" = (None, None, None)


def _native_address(address: "Any") -> "Any":
    """The address in the form this platform's bind, connect and sendto take."""
    readable, raw, _ = _last_address
    if address == readable:  # the reply to a request: looked at first
        return raw
    if not hasattr(socket, "sockaddr") or not isinstance(address, (tuple, str)):
        return address
    if isinstance(address, str):  # a Unix socket path, or "\0" and an
        import struct  # abstract name: no NUL added, as the length tells the end
        return struct.pack("H", socket.AF_UNIX) + address.encode()
    host, port = address[:2]
    return socket.getaddrinfo(host or "0.0.0.0", port)[0][-1]


def _readable_address(family: "int", address: "Any") -> "Any":
    """The (host, port) form of an address from accept() or recvfrom(),
    which MicroPython gives as raw sockaddr bytes.  Unix addresses stay as
    they are: they are only ever passed back to sendto()."""
    global _last_address
    if isinstance(address, tuple) or family == getattr(socket, "AF_UNIX", None):
        return address
    readable, raw, last_host = _last_address
    if address != raw:
        family, host, port = socket.sockaddr(address)[:3]  # type: ignore[attr-defined]
        readable = readable[0] if host == last_host else socket.inet_ntop(family, host), port
        _last_address = readable, address, host
    return readable


# What servers make their sockets with, unless a class sets its own
# socket_pool: the socket module, CircuitPython's pool, or on MicroPython's
# unix port sockets that take addresses as every other platform's do.
_default_pool: "Any" = socket
if hasattr(socket, "sockaddr"):
    class _default_pool:  # type: ignore[no-redef]
        """The socket module, with sockets whose bind() and sendto() take
        (host, port) and paths: a handler may reply to client_address, as
        the stdlib's documentation shows."""

        class socket(socket.socket):  # type: ignore[misc]
            def bind(self, address: "Any") -> None:
                super().bind(_native_address(address))

            def sendto(self, data: "Any", address: "Any") -> "int":
                return super().sendto(data, _native_address(address))  # type: ignore[no-any-return]


def _milliseconds(timeout: "Optional[float]") -> "int":
    """A timeout in seconds (None: for ever) in the whole milliseconds, -1
    for ever, that poll() takes (MicroPython's takes no float)."""
    return -1 if timeout is None else int(timeout * 1000 + 0.999)


def _readiness_waiter(server: "Any", wakeup: "Any" = None
                      ) -> "Optional[Callable[[int], Any]]":
    """A function that waits up to a timeout in milliseconds (-1: for ever)
    until the server, or the wakeup socket, is readable, and tells whether
    one is; None where there is no select module."""
    if select is None:
        return None
    waited = [server] if wakeup is None else [server, wakeup]
    if not hasattr(select, "poll"):
        return lambda timeout: select.select(
            waited, [], [], None if timeout < 0 else timeout / 1000)[0]
    poller = select.poll()
    try:
        # The descriptor, so that a BaseServer offering fileno() alone works.
        poller.register(server.fileno(), select.POLLIN)
        listener = None
    except (AttributeError, OSError):
        # Boards: lwIP sockets have no fileno(), and board builds of poll()
        # take objects only.  A failed register() can spoil a poller.
        poller = select.poll()
        listener = server.socket
        poller.register(listener, select.POLLIN)
    for other in waited[1:]:
        poller.register(other, select.POLLIN)
    if not listener:  # poll() itself: a call less per request
        return poller.poll

    def wait(timeout: "int") -> "Any":
        # A board's listener may poll readable with nothing to accept
        # (CircuitPython on the Pico W, always): accept() then waits no
        # longer than this wait would have.
        listener.settimeout(None if timeout < 0 else timeout / 1000)
        return poller.poll(timeout)
    return wait


if _thread is not None:
    _allocate_lock = _thread.allocate_lock
    _get_ident = _thread.get_ident
else:
    class _allocate_lock:  # type: ignore[no-redef]
        """With one thread only, a lock guards against re-entry alone:
        acquire() never waits, and tells whether the lock was free
        (ThreadingMixIn refuses to start)."""
        locked = False

        def acquire(self, *blocking: "Any") -> "bool":
            free = not self.locked
            self.locked = True
            return free

        def __exit__(self, *exc_info: "Any") -> None:
            self.locked = False

        __enter__ = acquire
        release = __exit__

    _get_ident = int  # the one thread's ident: int() is 0

# MicroPython and CircuitPython print an error given to them, and the
# sys.exc_info() of MicroPython, where it has one, is one for all threads:
# the error handed to handle_error() is noted per thread there, for the
# default handle_error().
_errors_noted: "dict[int, BaseException]" = {}
# Held for a moment by whatever changes state shared by all servers: the
# errors noted, the timeout of a socket that sends an empty reply.
_module_lock = _allocate_lock()


def _handle_error(server: "Any", request: "Any", client_address: "Any",
                  error: "BaseException") -> None:
    """server.handle_error() for this error.  Where the heap is too full to
    report it (a board under load), the error goes unreported rather than
    costing more than its request."""
    try:
        if not hasattr(sys, "__excepthook__"):
            with _module_lock:
                _errors_noted[_get_ident()] = error
        server.handle_error(request, client_address)
    except MemoryError:
        pass


def _current_error() -> "Any":
    """On MicroPython, the error that handle_error() is called for."""
    with _module_lock:
        error = _errors_noted.pop(_get_ident(), None)
    if error is None and hasattr(sys, "exc_info"):  # a call of the user's own
        error = sys.exc_info()[1]
    return error


try:
    from io import BufferedIOBase as _BinaryFile
except ImportError:  # MicroPython's io has IOBase, BytesIO and StringIO only
    class _BinaryFile:  # type: ignore[no-redef]
        """The part of io.BufferedIOBase that the handlers' files use."""
        closed = False

        def flush(self) -> None:
            pass

        def close(self) -> None:
            self.closed = True

        def __iter__(self) -> "Any":
            return self

        def __next__(self) -> "bytes":
            line = self.readline()  # type: ignore[attr-defined]
            if not line:
                raise StopIteration
            return line  # type: ignore[no-any-return]

def _ms_until(deadline: "Optional[int]" = None) -> "int":
    """The milliseconds left until deadline, negative once past; with no
    deadline, the clock itself, which a deadline is counted on.  The clock
    is MicroPython's ticks_ms() where it exists (a board's time.time()
    counts whole seconds), whose wrap-around ticks_diff() allows for, and
    a monotonic one elsewhere."""
    import time
    if hasattr(time, "ticks_ms"):
        now = time.ticks_ms()
        return now if deadline is None else time.ticks_diff(deadline, now)  # type: ignore[attr-defined,no-any-return]
    # monotonic_ns() where it exists: CircuitPython's float monotonic()
    # counts quarter seconds a week after boot, whole seconds after a month.
    clock = getattr(time, "monotonic_ns", None)
    now = clock() // 1000000 if clock else int(time.monotonic() * 1000)
    return now if deadline is None else deadline - now


def _recv(sock: "Any", size: "int") -> "bytes":
    """Up to size bytes from a stream socket, b"" at its end: through
    recv_into() where there is no recv() (CircuitPython's sockets)."""
    if hasattr(sock, "recv"):
        return sock.recv(size)  # type: ignore[no-any-return]
    buffer = bytearray(size)
    return bytes(memoryview(buffer)[:sock.recv_into(buffer)])

# On CPython and PyPy, makefile() gives a file over a socket.SocketIO that
# leaves the socket open when closed.  Elsewhere it may give a file on the
# socket's own descriptor, which closes the socket, or closes a newer
# connection's descriptor when garbage-collected, or nothing at all: there
# _SocketFile reads too (StreamRequestHandler.setup() tells them apart by
# socket.SocketIO), as it does wherever a whole request has a deadline.


class _SocketFile(_BinaryFile):
    """A binary file over a connection.  write() sends every byte before it
    returns; reads are buffered here, and end at the end of the stream.
    They receive 256 bytes at a time, as a board's heap is small and
    fragmented: on the boards' lwIP build, socketse frozen in serves an
    echo in 14 KiB of heap so, in 17 KiB receiving 512 bytes at a time.

    Each send and receive waits no longer than the socket's timeout and no
    later than the deadline: the request's (request_timeout after setup),
    and for a write, timeout after its start.  Once the deadline is past,
    the call raises socket.timeout, however slowly the peer keeps
    sending or reading.
    """

    def __init__(self, sock: "Any", timeout: "Optional[float]",
                 request_timeout: "Optional[float]") -> None:
        self._sock, self.timeout, self._unread, self._ended = sock, timeout, b"", False
        self._deadline = None if request_timeout is None else \
            _ms_until() + int(request_timeout * 1000)

    def writable(self) -> "bool":
        return True

    def fileno(self) -> "int":
        return self._sock.fileno()  # type: ignore[no-any-return]

    def _bound(self, deadline: "Optional[int]") -> None:
        """Let the next send or receive wait only until the deadline."""
        if deadline is not None:
            left = _ms_until(deadline)
            if left <= 0:
                from errno import ETIMEDOUT
                raise getattr(socket, "timeout", OSError)(ETIMEDOUT, "timed out")
            timeout = self.timeout
            self._sock.settimeout(left / 1000 if timeout is None else min(left / 1000, timeout))

    def write(self, data: "Any") -> "int":
        # A loop over send(), since sendall() may stop short on MicroPython.
        # The timeout bounds the whole call, not each send(), so that a
        # client reading a byte at a time cannot hold the handler.
        view = memoryview(data)
        if hasattr(view, "cast"):  # count bytes, not items of a wider format
            view = view.cast("B")
        deadline, timeout = self._deadline, self.timeout
        if timeout and (deadline is None or _ms_until(deadline) > timeout * 1000):
            deadline = _ms_until() + int(timeout * 1000)
        sent = 0
        while sent < len(view):  # never send(b""): esp32 takes it for a timeout
            self._bound(deadline)
            try:
                sent += self._sock.send(view[sent:])
            except OSError as error:
                # CircuitPython on ESP32 says EAGAIN at once for a full
                # buffer, whatever the timeout, having sent nothing: try
                # again a moment later, until the deadline.
                from errno import EAGAIN
                if error.args[0] != EAGAIN:
                    raise
                import time
                time.sleep(0.005)
        return sent

    def read(self, size: "Optional[int]" = -1) -> "bytes":
        return self._read(size, False)

    def readline(self, size: "Optional[int]" = -1) -> "bytes":
        return self._read(size, True)

    def _read(self, size: "Optional[int]", line: "bool") -> "bytes":
        """Up to size bytes (all, for None or a negative size), up to and
        with the first newline if line; fewer at the end of the stream."""
        pieces, count, chunk = [], 0, self._unread
        while True:
            end = chunk.find(b"\n") + 1 if line else 0
            end = end or len(chunk)
            if size is not None and 0 <= size - count < end:
                end = size - count
            pieces.append(chunk[:end])
            count += end
            self._unread = chunk[end:]
            if self._unread or count == size or line and chunk[end - 1:end] == b"\n":
                return b"".join(pieces)
            # Once the stream has ended it is not read again: CircuitPython
            # on ESP32 would wait for ever for more, where others say b"".
            if not self._ended:
                self._bound(self._deadline)
                chunk = _recv(self._sock, 256)
                self._ended = not chunk
            if self._ended:
                return b"".join(pieces)


# ---------------------------------------------------------------------------
# Servers
# ---------------------------------------------------------------------------

def _nothing(self: "Any") -> None:
    """The body of every hook without arguments that does nothing by
    default: one function object instead of one each, which a board's heap
    notices."""


class BaseServer:
    """The serving loop, with no socket of its own: a subclass supplies
    get_request(), and fileno() or, for boards (whose select waits on
    objects only), a socket attribute to wait on.

    What callers use: the constructor (server_address, RequestHandlerClass);
    serve_forever(poll_interval=0.5) until shutdown() from another thread,
    a handler or a signal handler; or handle_request() for one request at a
    time; server_close(), or a ``with`` block, to release the server.

    What a subclass may override, in the order the loop calls them:
    get_request(), verify_request(), process_request(), which calls
    finish_request() and then shutdown_request(), which calls
    close_request(); handle_error() when a request raises;
    handle_timeout() when handle_request() waited self.timeout for nothing;
    service_actions() on every round of serve_forever(); server_activate()
    and server_close() at the ends of the server's life.

    Attributes: server_address, RequestHandlerClass, socket (None here),
    timeout (for handle_request(); None waits for ever).
    """

    timeout: "Optional[float]" = None
    socket: "Any" = None

    if TYPE_CHECKING:  # what a subclass provides, for mypy
        def fileno(self) -> "int":
            ...

        def get_request(self) -> "Tuple[Any, Any]":
            ...

    # The hooks with nothing to do here: server_activate() (ready the
    # server), service_actions() (periodic work), handle_timeout() (no
    # request within self.timeout), and _wait_for_handlers() (what the
    # mix-ins wait for in server_close()).
    server_activate = service_actions = handle_timeout = \
        _wait_for_handlers = _nothing  # type: Any

    def __init__(self, server_address: "Any", RequestHandlerClass: "Any") -> None:
        """Keep the address and the handler class; subclasses that extend
        this call it first."""
        self.server_address, self.RequestHandlerClass = server_address, RequestHandlerClass
        # Not name-mangled (MicroPython mangles nothing): ThreadingMixIn reads it.
        self._stopping = False
        self.__wakeup: "Any" = None
        self.__serving = _allocate_lock()  # held while serve_forever runs
        self.__serving_thread: "Optional[int]" = None

    def serve_forever(self, poll_interval: "float" = 0.5) -> None:
        """Serve requests one after another until shutdown() is called,
        calling service_actions() at least every poll_interval seconds.
        self.timeout plays no part here."""
        if not self.__serving.acquire(False):
            raise RuntimeError("serve_forever() is running already")
        self.__serving_thread = _get_ident()
        wait: "Any" = None
        try:
            if select and _thread:  # else accept() waits, or no thread could call shutdown()
                # What shutdown() sends a byte through, so that the loop,
                # waiting on it too, wakes at once: a datagram socket on a
                # random loopback port, connected to itself, so that only
                # it can send there.  The port is below Linux's ephemeral
                # range (32768 and up), where clients' sockets linger in
                # TIME_WAIT.  Where none can be had (three ports taken, a
                # board with no loopback), the loop wakes within
                # poll_interval.
                wakeup = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                for attempt in "123":
                    try:
                        address = _native_address(
                            ("127.0.0.1", 20000 + int.from_bytes(os.urandom(2), "little") % 12768))
                        wakeup.bind(address)
                        wakeup.connect(address)
                        self.__wakeup = wakeup
                        break
                    except Exception:
                        pass
                else:
                    wakeup.close()
            wait = _readiness_waiter(self, self.__wakeup)
            if wait is None:  # no select: accept() itself waits, briefly
                self.socket.settimeout(poll_interval)
            interval = _milliseconds(poll_interval)
            while not self._stopping:
                try:
                    ready = wait(interval) if wait else True
                    if self._stopping:
                        break
                    if ready:
                        self._handle_request_noblock()
                except MemoryError:  # a board's heap, full for now: serve on
                    pass
                self.service_actions()
        finally:
            if wait is None:
                self.socket.settimeout(None)
            self._stopping = False
            wakeup, self.__wakeup = self.__wakeup, None
            if wakeup is not None:
                wakeup.close()
            self.__serving.release()
        # __serving_thread keeps its value: a signal handler calling
        # shutdown() in this thread, however late, must not wait for a lock
        # its own thread may still hold.

    def shutdown(self) -> None:
        """Ask serve_forever() to stop, and wait until it has stopped.

        The loop wakes at once where a socket can reach the loopback
        address and select exists, else within poll_interval.  Called in
        the serving thread itself (by a handler, or a signal handler), it
        returns at once and the loop ends after that request.
        """
        self._stopping = True
        self._wake_loop()
        if self.__serving_thread != _get_ident():
            with self.__serving:
                pass

    def _wake_loop(self) -> None:
        """Make serve_forever() look at the shutdown request now."""
        wakeup = self.__wakeup
        if wakeup is not None:
            try:
                wakeup.send(b"\0")
            except OSError:  # the loop has just ended and closed it
                pass

    def handle_request(self) -> None:
        """Wait for one request and handle it, or call handle_timeout() if
        none comes within self.timeout (or the socket's own timeout, if
        shorter)."""
        timeout = self.timeout
        gettimeout = getattr(self.socket, "gettimeout", None)
        socket_timeout = gettimeout() if gettimeout else None
        if timeout is None or (socket_timeout is not None and socket_timeout < timeout):
            timeout = socket_timeout
        if timeout is not None and timeout < 0:  # a deadline already past:
            timeout = 0  # look once, as the stdlib does, never wait for ever
        wait = _readiness_waiter(self)
        if wait is None:  # no select: accept() itself waits
            self.socket.settimeout(timeout)
        try:
            if (wait and not wait(_milliseconds(timeout))) or self._handle_request_noblock():
                self.handle_timeout()
        finally:
            if wait is None:
                self.socket.settimeout(socket_timeout)

    def _handle_request_noblock(self) -> "bool":
        """Take the request that is waiting, then verify_request() and
        process_request(), which owns the request from then on; on a
        refusal or an error, the request is closed here, whatever
        handle_error() does.  Tell whether accept() timed out instead: a
        board's listener may poll readable with nothing to accept (see
        _readiness_waiter), and without select it waits."""
        try:
            request, client_address = self.get_request()
        except (OSError, MemoryError, RuntimeError) as error:  # costs this request, not the loop
            code = error.args[0] if error.args else None
            if isinstance(error, RuntimeError) or code in (23, 24):
                # ENFILE or EMFILE (by number: MicroPython's errno lacks
                # them), or CircuitPython's "Out of sockets": pause rather
                # than spin until a socket is free.
                import time
                time.sleep(0.1)
            from errno import EAGAIN, ETIMEDOUT
            return code in (EAGAIN, ETIMEDOUT) or isinstance(error, getattr(socket, "timeout", ()))
        handed_over = False
        try:
            if self.verify_request(request, client_address):
                self.process_request(request, client_address)
                handed_over = True
        except Exception as error:
            _handle_error(self, request, client_address, error)
        finally:
            if not handed_over:
                self.shutdown_request(request)
        return False

    def verify_request(self, request: "Any", client_address: "Any") -> "bool":
        """Whether to handle this request (False closes it unanswered);
        every request is accepted here."""
        return True

    def process_request(self, request: "Any", client_address: "Any") -> None:
        """Handle the request in this thread, then close it.  The mix-ins
        hand it to a thread or a child process instead."""
        self.finish_request(request, client_address)
        self.shutdown_request(request)

    def server_close(self) -> None:
        """Release the server.  The mix-ins wait here for their handlers
        (block_on_close), through _wait_for_handlers, so that they need no
        cooperative super(), which MicroPython lacks."""
        self._wait_for_handlers()

    def finish_request(self, request: "Any", client_address: "Any") -> None:
        """Handle the request: make a RequestHandlerClass for it."""
        self.RequestHandlerClass(request, client_address, self)

    def shutdown_request(self, request: "Any") -> None:
        """End the request; here that is close_request()."""
        self.close_request(request)

    def close_request(self, request: "Any") -> None:
        """Release what the request holds; nothing here."""

    def handle_error(self, request: "Any", client_address: "Any") -> None:
        """Report the error a request raised: its traceback, to stderr.  The
        request is closed afterwards whatever this does, and the server goes
        on serving."""
        print('-' * 40 + '\nException occurred during processing of request from',
              client_address, file=sys.stderr)
        error = _current_error()
        if hasattr(sys, "print_exception"):  # MicroPython has no traceback module
            # Not a MemoryError's traceback: one made on a full heap is kept
            # in the one buffer all of MicroPython's threads share, and
            # printing it while another thread's MemoryError rewrites it
            # can crash the interpreter.
            if isinstance(error, MemoryError):
                print(repr(error), file=sys.stderr)
            else:
                sys.print_exception(error, sys.stderr)
        elif hasattr(sys, "exc_info"):  # the interpreter's own display: nothing to import
            sys.__excepthook__(*sys.exc_info())
        else:  # CircuitPython
            import traceback
            traceback.print_exception(error, file=sys.stderr)
        print('-' * 40, file=sys.stderr)

    def __enter__(self: "Any") -> "Any":
        return self

    def __exit__(self, *args: "Any") -> None:
        self.server_close()


class TCPServer(BaseServer):
    """A BaseServer on a socket of its own: TCP unless a subclass says
    otherwise, and the base of every socket server here.

    It adds to BaseServer: the constructor's bind_and_activate (False
    leaves binding and listening to the caller, who then calls
    server_bind() and server_activate()); fileno(), the socket's; and the
    class attributes address_family, socket_type, request_queue_size (the
    listen backlog), allow_reuse_address and allow_reuse_port, which a
    subclass or an instance may change before binding; and socketse's
    own socket_pool, what the socket is made with (its socket(family,
    type)): the socket module where there is one, on CircuitPython
    socketpool.SocketPool(wifi.radio).  A CircuitPython program whose pool
    is another (WIZnet5k, ESP32SPI) sets socket_pool to it, and
    address_family and socket_type to its numbers.  server_address is the
    address actually bound, where the socket can tell it.
    """

    socket_pool = _default_pool
    address_family = socket.AF_INET
    socket_type = socket.SOCK_STREAM
    # Without SOMAXCONN (MicroPython), 32: on the unix port a burst of 200
    # connects is then all answered within a second or two (with 5, as the
    # stdlib has, 80 of them in 5 s), and a board's lwIP keeps 32 pointers.
    request_queue_size = getattr(socket, "SOMAXCONN", 32)
    allow_reuse_address = False
    allow_reuse_port = False

    def __init__(self, server_address: "Any", RequestHandlerClass: "Any",
                 bind_and_activate: "bool" = True) -> None:
        """Make the socket and, unless told not to, bind it and listen; a
        failure there closes it again."""
        BaseServer.__init__(self, server_address, RequestHandlerClass)
        if self.address_family == socket.AF_INET and ":" in server_address[0]:
            self.address_family = socket.AF_INET6  # an IPv6 literal
        # Positional arguments: MicroPython ignores keywords here.
        self.socket = self.socket_pool.socket(self.address_family, self.socket_type)
        if bind_and_activate:
            try:
                self.server_bind()
                self.server_activate()
            except BaseException:
                self.server_close()
                raise

    def server_bind(self) -> None:
        """Set the reuse options asked for, and bind to server_address."""
        for wanted, name in ((self.allow_reuse_address, "SO_REUSEADDR"),
                             (self.allow_reuse_port, "SO_REUSEPORT")):
            option = getattr(socket, name, None)
            if wanted and option:
                self.socket.setsockopt(socket.SOL_SOCKET, option, 1)
        self.socket.bind(self.server_address)
        if hasattr(self.socket, "getsockname"):  # so that port 0 tells its port
            self.server_address = self.socket.getsockname()

    def server_activate(self) -> None:
        """Listen, with request_queue_size as the backlog."""
        self.socket.listen(self.request_queue_size)

    def server_close(self) -> None:
        """Close the socket, then wait for the handlers as BaseServer does."""
        self.socket.close()
        BaseServer.server_close(self)

    def fileno(self) -> "int":
        """The socket's descriptor, for select() and its kin."""
        return self.socket.fileno()  # type: ignore[no-any-return]

    def get_request(self) -> "Tuple[Any, Any]":
        """Accept a connection: (the new socket, the peer's address)."""
        request, client_address = self.socket.accept()
        try:
            # Blocking, as the stdlib's: where a socket cannot tell its
            # timeout, it may have the listener's (MicroPython) or none
            # (CircuitPython on ESP32), so it is set.
            if not hasattr(request, "gettimeout"):
                request.settimeout(None)
            return request, _readable_address(self.address_family, client_address)
        except BaseException:  # a MemoryError on a board, say: not a leak too
            request.close()
            raise

    def shutdown_request(self, request: "Any") -> None:
        """Send the end of the stream, then close_request().  The explicit
        end reaches the peer even while another reference (a makefile()
        object, a forked child) keeps the socket itself open."""
        try:
            if hasattr(request, "shutdown"):
                request.shutdown(socket.SHUT_WR)
            else:  # MicroPython: close() with input unread would reset the
                request.settimeout(0)  # connection: read what has come, up
                # to 64 KiB, without waiting, in small reads (a board's heap
                # is small); through read() where there is one, which says
                # None for "nothing yet" where recv() raises, at a cost.
                read = getattr(request, "read", None)
                for _ in range(1024):
                    if not (read(64) if read else _recv(request, 64)):
                        break
        except (OSError, MemoryError):  # the peer has gone (ENOTCONN), no more input, no heap
            pass
        self.close_request(request)

    def close_request(self, request: "Any") -> None:
        """Close the connection's socket."""
        request.close()


class UDPServer(TCPServer):
    """Datagrams: each one is a request, handed over as (data, socket), of
    at most max_packet_size bytes (the rest of a longer one is lost)."""

    socket_type = socket.SOCK_DGRAM
    max_packet_size = 8192

    def get_request(self) -> "Tuple[Any, Any]":
        sock = self.socket
        if hasattr(sock, "recvfrom"):
            data, address = sock.recvfrom(self.max_packet_size)
        else:  # CircuitPython, whose ESP32 sendto() takes back two items of
            data = bytearray(self.max_packet_size)  # the four of an IPv6 peer
            size, address = sock.recvfrom_into(data)
            data, address = bytes(memoryview(data)[:size]), address[:2]
        return (data, sock), _readable_address(self.address_family, address)

    # No listen(), and nothing to end or close per datagram: the socket is
    # the server's own.
    server_activate: "Any" = _nothing
    shutdown_request = BaseServer.shutdown_request
    close_request = BaseServer.close_request


if hasattr(socket, "AF_UNIX"):
    class UnixStreamServer(TCPServer):
        address_family = socket.AF_UNIX

    class UnixDatagramServer(UDPServer):
        address_family = socket.AF_UNIX


# ---------------------------------------------------------------------------
# Mix-ins: one request per process, one request per thread
# ---------------------------------------------------------------------------

if TYPE_CHECKING:  # mypy checks the mix-ins as servers
    _MixIn = BaseServer
else:
    _MixIn = object


if hasattr(os, "fork"):
    class ForkingMixIn(_MixIn):
        """Handle each request in a child process of its own.

        What a subclass may set: max_children (while this many children
        live, serving waits for one to exit), block_on_close (whether
        server_close() waits for every child), timeout (300 s: how long
        handle_request() waits before it reaps children anyway).
        active_children is the set of children not yet reaped, None
        before the first; collect_children() reaps those that have exited,
        and serve_forever() calls it on every round.
        """

        timeout: "Optional[float]" = 300
        active_children: "Any" = None
        max_children = 40
        block_on_close = True

        def collect_children(self, *, blocking: "bool" = False) -> None:
            """Reap the children that have exited (with blocking, wait for
            each); then, while max_children still live, wait for one."""
            children = self.active_children
            while children:
                for pid in list(children):
                    try:
                        ended = os.waitpid(pid, 0 if blocking else os.WNOHANG)[0]
                    except OSError:  # reaped already, by other code
                        ended = pid
                    if ended:
                        children.discard(pid)
                if len(children) < self.max_children:
                    return
                # Only waitpid(-1) waits for "any child", and it would reap
                # children that other code of this process waits for.
                import time
                time.sleep(0.01)

        def service_actions(self) -> None:
            """Reap: on every round of serve_forever(), and (as
            handle_timeout) when handle_request() found nothing to do."""
            self.collect_children()

        handle_timeout = service_actions

        def process_request(self, request: "Any", client_address: "Any") -> None:
            """Fork: the child handles the request as a handler thread
            does, and exits without ever returning to the loop, with
            status 0 if the request went without an error, else 1 (as the
            stdlib's); the parent closes its copy of the request and serves
            on."""
            child = os.fork()
            if not child:
                status = 1
                try:
                    if ThreadingMixIn.process_request_thread(
                            self, request, client_address):  # type: ignore[arg-type]
                        status = 0
                finally:
                    os._exit(status)
            children = self.active_children
            if children is None:
                children = self.active_children = set()
            children.add(child)
            self.close_request(request)

        def _wait_for_handlers(self) -> None:
            self.collect_children(blocking=self.block_on_close)


class _HandlerThreads:
    """The handler threads of one ThreadingMixIn server, kept with _thread.

    The serving thread alone calls start(); a handler thread calls
    _finish() after each request, then, if reuse_threads, parks until
    start() hands it the next one, or close() ends it.  Under _lock, these
    hold:

    - _busy counts the requests handed over and not finished, and never
      exceeds _limit (max_threads); where the platform refuses a thread
      (the Pico W has one to give) or the heap cannot hold one more
      request, that request waits for a busy one to finish, as at
      max_threads;
    - _parked holds a [wake-up lock, request] slot per parked thread, at
      most 16 of them (None once closed); a slot parked idle_seconds ends
      its thread: after a spike of clients, its threads do not stay.  A
      parked thread keeps heap (about 800 bytes on the unix port, and the
      heap fragmented around it), so each start() that finds no room ends
      one, and the next try may find its heap;
    - _all_done is held while _busy is not 0, for join();
    - _handlers maps a key made for each handler thread to its ident, so
      that join() called by one of them does not wait for itself.  start()
      makes the entry, so that a thread never grows a container, and a
      MemoryError anywhere in the pool costs at most the request it
      happened to (closed, and counted finished), never a count, a lock or
      the serving loop;
    - _unstarted counts the threads started that have not yet run (their
      ident still None).  start() does not wait for a thread to run, as
      threading's start() does (on MicroPython that wait cost a third of
      the requests a second of a thread per request); its trial of the
      heap asks for each of those threads too, as each will soon take its
      share: so a burst on a small heap waits rather than overcommits.

    A start() that finds no room publishes a fresh, held lock as _waiter,
    and sleeps on it until stop_waiting() releases it: _finish() calls it,
    and so does shutdown().  It takes no lock, so a signal handler may call
    it while the serving thread holds _lock; a start() it wakes for
    nothing looks again.
    """

    idle_seconds = 60

    def __init__(self, server: "Any") -> None:
        self.server = server
        self._limit: "Optional[int]" = server.max_threads
        self._busy = 0
        self._lock = _allocate_lock()
        self._all_done = _allocate_lock()
        self._parked: "Optional[list[list[Any]]]" = []
        self._waiter: "Any" = None
        # A dict, as a set that fails to grow on a full heap is left
        # corrupt on MicroPython.
        self._handlers: "dict[Any, Optional[int]]" = {}
        self._unstarted = 0

    def __len__(self) -> "int":
        return self._busy

    def start(self, request: "Tuple[Any, Any]") -> "bool":
        """Have a handler thread, a parked one if any, call the server's
        process_request_thread(*request), and return True; False, without
        calling it, if a shutdown came while there was no room."""
        limit = self._limit
        for attempt in range(20):
            while True:
                with self._lock:
                    if limit is None or self._busy < limit:
                        if not self._busy:
                            self._all_done.acquire()
                        self._busy += 1
                        break
                    waiter = self._waiter = _allocate_lock()
                    waiter.acquire()
                # Published before _stopping is read: a shutdown() either
                # comes first and is seen, or finds the waiter and frees it.
                if self.server._stopping:
                    return False
                waiter.acquire()
            key = None
            try:
                # The heap a request in flight takes (about 1.3 KB on a
                # 64-bit unix MicroPython), for this one and each thread
                # not yet running, tried first: where it cannot be had, the
                # request waits for a busy thread, as at max_threads.
                # gc.mem_free() would not tell (it counts all free heap, and
                # what fails is one contiguous block), and costs 0.2 ms on
                # the unix port's 2 MB heap.
                bytearray(1024 + 1024 * self._unstarted)
                with self._lock:
                    slot = self._parked.pop() if self._parked else None
                if slot:
                    slot[1] = request
                    slot[0].release()
                    return True
                # The new thread's entry for join() is made here, where a
                # full heap is a refusal: the thread then only fills it in.
                key = object()
                with self._lock:
                    self._handlers[key] = None
                    self._unstarted += 1
                _thread.start_new_thread(self._work, (key, request))
                return True
            except (OSError, RuntimeError, MemoryError) as refusal:  # no thread or heap to be had
                error = refusal
                with self._lock:
                    if self._handlers.pop(key, 0) is None:  # no thread to run
                        self._unstarted -= 1
                    slot = self._parked.pop() if self._parked else None
                if slot:  # ended, to give back its heap (and its thread)
                    slot[1] = None
                    slot[0].release()
                self._finish(None)
                # Wait for one of the busy ones, as at max_threads; with
                # none busy, a moment (a thread that has ended may not be
                # gone yet: rp2's one extra thread).
                limit = self._busy or self._limit
                if limit is self._limit:
                    import time
                    time.sleep(0.05)
        raise error

    def stop_waiting(self) -> None:
        """Free a start() waiting for room: shutdown() never waits for a
        handler to end."""
        waiter = self._waiter
        if waiter:
            try:
                waiter.release()
            except RuntimeError:  # released already: start() is awake
                pass

    def _work(self, key: "Any", request: "Optional[Tuple[Any, Any]]") -> None:
        with self._lock:  # a value replaced, a count: no heap needed
            self._handlers[key] = _get_ident()
            self._unstarted -= 1
        slot: "Any" = None
        server = self.server
        try:
            while request:
                try:
                    try:
                        server.process_request_thread(*request)
                    except MemoryError:  # before its own try could close the request
                        server.shutdown_request(request[0])
                    if not slot and server.reuse_threads:
                        slot = [_allocate_lock(), None]
                        slot[0].acquire()
                except BaseException as error:  # SystemExit and kin end the thread
                    # Reported where programs watch for thread deaths, as
                    # the stdlib's are, before join() can return: through
                    # threading.excepthook where threading is in use.
                    try:
                        threading: "Any" = sys.modules.get("threading")
                        if not hasattr(threading, "excepthook"):
                            raise
                        threading.excepthook(threading.ExceptHookArgs(
                            (type(error), error, error.__traceback__, None)))
                        return
                    finally:
                        self._finish(None)
                if not self._finish(slot):
                    return
                # Parked: wait for start() to hand over a request, or
                # close() None, or for idle_seconds; then, if still parked, end.
                if not slot[0].acquire(1, self.idle_seconds):
                    with self._lock:
                        parked = self._parked
                        if parked and slot in parked:
                            parked.remove(slot)
                            return
                    slot[0].acquire()  # start() or close() took it: it releases it
                request = slot[1]
        finally:
            with self._lock:
                del self._handlers[key]

    def _finish(self, slot: "Any") -> "bool":
        """Count a request finished; park the slot (a thread that
        reuse_threads keeps has one), unless closed or enough threads are
        parked.  Return whether it parked."""
        with self._lock:
            self._busy -= 1
            if not self._busy:
                self._all_done.release()
            parked = self._parked
            try:  # on a full heap, the thread ends instead of parking
                if slot and parked is not None and len(parked) < 16:
                    parked.append(slot)
                else:
                    slot = None
            except MemoryError:
                slot = None
        self.stop_waiting()  # room for a waiting start(), if any
        return slot is not None

    def join(self) -> None:
        """Wait until no request is busy, unless called by a handler (one
        that closes its own server): it would wait for itself."""
        with self._lock:
            handler = _get_ident() in self._handlers.values()
        if not handler:
            with self._all_done:
                pass

    def close(self) -> None:
        with self._lock:
            parked, self._parked = self._parked or [], None
        for slot in parked:
            slot[1] = None
            slot[0].release()


class ThreadingMixIn(_MixIn):
    """Handle each request in a thread of its own.

    What a subclass may set:

    - daemon_threads: if true, server_close() does not wait for handlers
    - block_on_close: if true (the default), server_close() waits until
      every non-daemon handler thread has ended
    - max_threads: at most this many handler threads at once; while that
      many are busy, the server accepts nothing more and connections wait
      in the listen backlog.  None (the default) sets no bound, as the
      stdlib.  Where the platform refuses a thread, requests wait for a
      busy one in the same way.
    - reuse_threads: if true, a handler thread that has finished a
      request waits for the next one instead of ending, which saves
      starting a thread per request; thread-local data then outlives a
      request.  False starts a new thread per request, as the stdlib.
      The default is true where a parked thread can end on its own (locks
      that wait with a timeout: CPython, PyPy), false where it could not
      (MicroPython): there each parked thread would keep its heap for
      good, and the unix port's collector has been seen to free a request
      handed over to one.
    """

    daemon_threads = False
    block_on_close = True
    max_threads: "Optional[int]" = None
    try:  # only locks that honour a timeout refuse a negative one
        reuse_threads = not _allocate_lock().acquire(True, -2)
    except ValueError:
        reuse_threads = True
    # The pool, made by the first request; until then no pool, spelled ()
    # (len() 0, which the stdlib's own tests read, as they read its _threads).
    _threads: "Any" = ()

    if _thread is None:
        def __init__(self, *args: "Any", **kwargs: "Any") -> None:
            raise ImportError("ThreadingMixIn needs the _thread module, "
                              "which this Python does not have")

    def process_request_thread(self, request: "Any", client_address: "Any") -> "bool":
        """Handle the request in this handler thread, report what it
        raises, and close it; tell whether it went without an error
        (ForkingMixIn's child exits with that)."""
        try:
            self.finish_request(request, client_address)
            return True
        except Exception as error:
            _handle_error(self, request, client_address, error)
            return False
        finally:
            self.shutdown_request(request)

    def process_request(self, request: "Any", client_address: "Any") -> None:
        """Hand the request to a handler thread."""
        if not isinstance(self._threads, _HandlerThreads):
            self._threads = _HandlerThreads(self)
        if not self._threads.start((request, client_address)):
            self.shutdown_request(request)  # shutting down: as if never accepted

    def _wake_loop(self) -> None:
        BaseServer._wake_loop(self)
        if isinstance(self._threads, _HandlerThreads):
            self._threads.stop_waiting()

    def _wait_for_handlers(self) -> None:
        if isinstance(self._threads, _HandlerThreads):
            if self.block_on_close and not self.daemon_threads:
                self._threads.join()
            self._threads.close()


# ---------------------------------------------------------------------------
# The ready-made servers
# ---------------------------------------------------------------------------

# Each mix-in with each server class this platform has, named as the
# stdlib names them: ThreadingTCPServer, ForkingUnixDatagramServer and so
# on.  Made here in one expression (whose names a board need not keep), as
# eight class statements would cost a board their code; mypy reads them as
# written below.
if TYPE_CHECKING:
    class ForkingUDPServer(ForkingMixIn, UDPServer): ...
    class ForkingTCPServer(ForkingMixIn, TCPServer): ...
    class ThreadingUDPServer(ThreadingMixIn, UDPServer): ...
    class ThreadingTCPServer(ThreadingMixIn, TCPServer): ...
    class ThreadingUnixStreamServer(ThreadingMixIn, UnixStreamServer): ...
    class ThreadingUnixDatagramServer(ThreadingMixIn, UnixDatagramServer): ...
    class ForkingUnixStreamServer(ForkingMixIn, UnixStreamServer): ...
    class ForkingUnixDatagramServer(ForkingMixIn, UnixDatagramServer): ...
globals().update(
    (name, type(name, (mixin, server), {}))
    for mixin in (ThreadingMixIn, globals().get("ForkingMixIn")) if mixin
    for server in (UDPServer, TCPServer, globals().get("UnixStreamServer"),
                   globals().get("UnixDatagramServer")) if server
    for name in [mixin.__name__[:-5] + server.__name__])


# ---------------------------------------------------------------------------
# Request handlers
# ---------------------------------------------------------------------------

class BaseRequestHandler:
    """One request's handling: the server makes an instance per request.

    Subclass it and write handle(); setup() runs first and finish() last,
    even when handle() raises.  Each of them finds the request (a socket,
    or (data, socket) for datagrams) in self.request, the peer's address
    in self.client_address and its server in self.server; being an
    instance per request, it may keep its own state on self.
    """

    def __init__(self, request: "Any", client_address: "Any", server: "Any") -> None:
        self.request, self.client_address, self.server = request, client_address, server
        self.setup()
        try:
            self.handle()
        finally:
            self.finish()

    setup = handle = finish = _nothing  # type: Any


class StreamRequestHandler(BaseRequestHandler):
    """A connection read through self.rfile and written through self.wfile
    (self.connection is the socket).

    What a subclass may set: rbufsize (rfile's buffer; -1 the default),
    wbufsize (0, the default: every wfile.write() has sent all its bytes
    when it returns; more buffers the replies, sent by flush() and at the
    end), timeout (set on the connection unless None, so that a silent
    client costs a timeout, not a handler), disable_nagle_algorithm
    (TCP_NODELAY, for small buffered replies), and, socketse's own,
    request_timeout: unless None, the seconds the whole request may take
    from setup().  Every read and write of rfile and wfile after that
    raises socket.timeout, so that a client sending or reading a byte now
    and then, each within timeout, still cannot hold a handler for long.
    With it, wfile is unbuffered and rfile is socketse's own everywhere.
    """

    rbufsize = -1
    wbufsize = 0
    timeout: "Optional[float]" = None
    request_timeout: "Optional[float]" = None
    disable_nagle_algorithm = False

    def setup(self) -> None:
        sock = self.connection = self.request
        timeout = self.timeout
        if timeout is not None:
            sock.settimeout(timeout)
        if self.disable_nagle_algorithm:
            sock.setsockopt(getattr(socket, "IPPROTO_TCP", 6),
                            getattr(socket, "TCP_NODELAY", 1), 1)
        self.rfile = self.wfile = _SocketFile(sock, timeout, self.request_timeout)  # type: Any
        # makefile() where it is safe (see _SocketFile) and nothing is due
        if hasattr(socket, "SocketIO") and self.request_timeout is None:
            self.rfile = sock.makefile("rb", self.rbufsize)
            if self.wbufsize:
                self.wfile = sock.makefile("wb", self.wbufsize)

    def finish(self) -> None:
        try:
            self.wfile.close()  # flushes what is buffered
        except OSError:
            pass  # the peer has gone: nothing more can be delivered
        self.rfile.close()


class DatagramRequestHandler(BaseRequestHandler):
    """A datagram read from self.rfile, answered through self.wfile:
    finish() sends what handle() wrote back to the sender, in one
    datagram.  self.packet is the datagram, self.socket the server's.
    """

    def setup(self) -> None:
        from io import BytesIO
        packet, self.socket = self.request
        self.packet, self.rfile, self.wfile = packet, BytesIO(packet), BytesIO()

    def finish(self) -> None:
        reply, sock, address = self.wfile.getvalue(), self.socket, self.client_address
        if reply:
            sock.sendto(reply, address)
            return
        # An empty reply is a datagram too, but esp32's blocking sendto(b"")
        # repeats it for ever: send it without waiting (esp32 then sends it
        # once and reports a timeout), on a socket other handler threads
        # share, so one at a time.
        with _module_lock:
            timeout = sock.gettimeout() if hasattr(sock, "gettimeout") else None
            sock.settimeout(0)
            try:
                sock.sendto(reply, address)
            except OSError:
                pass
            finally:
                sock.settimeout(timeout)



# Every public name is a class; which ones exist depends on the platform.
# (Keys alone: a list of (name, value) pairs would be the import's peak.)
__all__ = [name for name in globals()
           if not name.startswith("_") and isinstance(globals()[name], type)]
