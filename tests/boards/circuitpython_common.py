# CircuitPython board profile, the part its ports share.  The flavours,
# circuitpython_raspberrypi.py (Pico W) and circuitpython_espressif.py
# (ESP32-S2/S3/C3/C6), subclass Socket with their port's behaviour and call
# install(), which puts `socketpool` and `wifi` into sys.modules, and the
# board's own `select`, `errno` and `time` in place of the unix port's.
# Import a flavour BEFORE anything imports select, errno or time for itself
# (tests/runner.py --board does).
#
# It runs on CircuitPython's own unix port (build-circuitpython.sh under
# ../shared/boards/circuitpython), which has no `socket` module and gets its
# sockets from nowhere: the host's are there as `_hostsocket` (MicroPython's
# unix socket module, raw sockaddr bytes), and this re-creation sits on them.
# The host's loopback stands for the board's network: the tests' clients are
# host sockets.
#
# Source of every fact, unless a comment says otherwise: adafruit/circuitpython
# at cd3da4a5d8 (10.3.0-alpha.4-53, the commit the build script builds):
# shared-bindings/socketpool/Socket.c, SocketPool.c and enum.h ("the binding"),
# extmod/modselect.c, py/moderrno.c, py/obj.h, py/circuitpy_mpconfig.h,
# shared-bindings/time/__init__.c; newlib's sys/errno.h for the numbers.  The
# ports' common-hal files are cited in the flavour modules.
#
# Not re-created: sockets closed by the garbage collector (the C type has a
# finaliser; this interpreter runs no __del__ of a Python class, so a socket
# dropped without close() stays open and counted here), SOCK_RAW, the web
# workflow's own sockets, ssl, mDNS, interrupting a wait with Ctrl-C.
import sys
import struct
import _hostsocket as _hs
import errno as _herrno      # the host's numbers, for reading its errors
import select as _hselect
import time as _htime


class _Module:
    def __init__(self, name, **attrs):
        self.__name__ = name
        for key in attrs:
            setattr(self, key, attrs[key])


# ---- errno -----------------------------------------------------------------
# py/moderrno.c's list, which CircuitPython extends with ENOSPC and EROFS.  No
# port sets MICROPY_USE_INTERNAL_ERRNO (py/mpconfig.h: 0 by default), so the
# numbers are the C library's, newlib's on both ports: errno.ETIMEDOUT is 116
# on a board and 110 on the unix port.  Code must go by name.
_NEWLIB = {
    'EPERM': 1, 'ENOENT': 2, 'EIO': 5, 'EBADF': 9, 'EAGAIN': 11, 'ENOMEM': 12,
    'EACCES': 13, 'EEXIST': 17, 'ENODEV': 19, 'EISDIR': 21, 'EINVAL': 22,
    'ENOSPC': 28, 'EROFS': 30, 'EOPNOTSUPP': 95, 'EADDRINUSE': 112,
    'ECONNABORTED': 113, 'ECONNRESET': 104, 'ENOBUFS': 105, 'ENOTCONN': 128,
    'ETIMEDOUT': 116, 'ECONNREFUSED': 111, 'EHOSTUNREACH': 118, 'EALREADY': 120,
    'EINPROGRESS': 119,
}
EBADF, EAGAIN, ENOMEM, EINVAL, EIO = 9, 11, 12, 22, 5
EOPNOTSUPP, EADDRINUSE, ECONNABORTED, ECONNRESET = 95, 112, 113, 104
ENOBUFS, ENOTCONN, ETIMEDOUT, EHOSTUNREACH, EALREADY, EINPROGRESS = 105, 128, 116, 118, 120, 119
# Raised by the socket code, named nowhere in the module.
EPIPE, ENFILE, ENOPROTOOPT, EISCONN, EMSGSIZE = 32, 23, 109, 127, 122

errno = _Module('errno', errorcode=dict((v, k) for k, v in _NEWLIB.items()), **_NEWLIB)

# The host's error numbers (Linux) to the board's, matched by name; the last
# ones are missing from the unix port's errno module.
_HOST_TO_BOARD = dict((getattr(_herrno, k), v) for k, v in _NEWLIB.items() if hasattr(_herrno, k))
_HOST_TO_BOARD.update({32: EPIPE, 106: EISCONN, 92: ENOPROTOOPT, 90: EMSGSIZE, 99: 125})
H_EAGAIN, H_EINPROGRESS = _herrno.EAGAIN, _herrno.EINPROGRESS


def host_errno(error):
    """The board's number for an OSError from a host socket."""
    n = error.args[0] if error.args else None
    return _HOST_TO_BOARD.get(n, n)


# ---- numbers and clocks ------------------------------------------------------

def f32(x):
    return struct.unpack('<f', struct.pack('<f', x))[0]


def board_float(x):
    # py/obj.h, MICROPY_OBJ_REPR_C (py/circuitpy_mpconfig.h): a float object is
    # single precision with the low two mantissa bits dropped, and refilled from
    # the two bits above them when read.
    u = struct.unpack('<I', struct.pack('<f', x))[0] & 0xFFFFFFFC
    return struct.unpack('<f', struct.pack('<I', u | (u >> 2) & 3))[0]


def ticks():
    return _htime.ticks_ms()


def since(start):
    return _htime.ticks_diff(_htime.ticks_ms(), start)


_BOOT = ticks()
# The board has been up a week: servers run for weeks, and by then a board's
# float time.monotonic() counts quarter seconds (see monotonic()).
UPTIME_MS = 7 * 24 * 3600 * 1000
FOREVER = 0xFFFFFFFF          # (mp_uint_t)-1, the binding's "no timeout"
# A wait that a board would keep up for ever gives up here after this long,
# with AssertionError, so that a test fails instead of hanging.
FOREVER_HERE_MS = 30000


def waited_for_ever(what):
    return AssertionError('%s: a board would wait here for ever (given up after %d s)'
                          % (what, FOREVER_HERE_MS // 1000))


def timeout_ms(value):
    # Socket.c socketpool_socket_settimeout: None is (mp_uint_t)-1; otherwise
    # 1000 * the float, truncated to 32 bits: whole milliseconds, and under
    # 1 ms is 0, non-blocking.  A negative timeout is undefined behaviour in C;
    # the ARM and RISC-V conversions give 0, taken here for every chip.
    if value is None:
        return FOREVER
    if not isinstance(value, (int, float)):
        raise TypeError("can't convert %s to float" % type(value).__name__)
    ms = f32(1000 * board_float(value))
    return 0 if ms < 1 else FOREVER if ms >= FOREVER else int(ms)


def uptime_ms():
    return UPTIME_MS + since(_BOOT)


def monotonic():
    # time_monotonic: milliseconds since boot over 1000, as a board float (22
    # bits of precision): exact to the millisecond for about an hour after
    # boot, a quarter second after a week.  Added: the unix port's time
    # module has no monotonic(), which every board has.
    return board_float(uptime_ms() / 1000)


def _sleep(seconds):
    # time_sleep: whole milliseconds, rounded; a negative time is refused
    ms = f32(1000 * board_float(seconds) + 0.5)
    if ms < 0:
        raise ValueError('seconds must be >= 0')
    _htime.sleep_ms(int(ms))


# shared-bindings/time/__init__.c: time() counts whole seconds; no ticks_ms,
# sleep_ms or gmtime (those are MicroPython's).  localtime() and mktime() are
# the host's, giving tuples where a board gives struct_time.
time = _Module('time', monotonic=monotonic, sleep=_sleep,
               time=lambda: int(_htime.time()),
               monotonic_ns=lambda: uptime_ms() * 1000000,
               localtime=_htime.localtime, mktime=_htime.mktime)


# ---- arguments, as the binding takes them ------------------------------------

def get_int(v):
    # mp_obj_get_int: an int or a bool; a float raises TypeError
    if not isinstance(v, int):
        raise TypeError("can't convert %s to int" % type(v).__name__)
    return v


def get_str(v):
    # mp_obj_str_get_data: a str, or bytes
    if isinstance(v, bytes):
        return v.decode()
    if not isinstance(v, str):
        raise TypeError("can't convert '%s' object to str implicitly" % type(v).__name__)
    return v


def get_address(address):
    # Socket.c bind/connect/sendto: mp_obj_get_array_fixed_n(address, 2), so a
    # tuple or list of exactly two (an IPv6 4-tuple from accept() is refused);
    # the host a str; a negative port refused, the rest cut to 16 bits by lwIP
    if not isinstance(address, (tuple, list)):
        raise TypeError("object '%s' isn't a tuple or list" % type(address).__name__)
    if len(address) != 2:
        raise ValueError('requested length 2 but object has length %d' % len(address))
    host, port = get_str(address[0]), get_int(address[1])
    if port < 0:
        raise ValueError('port must be >= 0')
    return host, port & 0xFFFF


def read_buffer(data):
    # mp_get_buffer_raise(MP_BUFFER_READ)
    try:
        return memoryview(data)
    except TypeError:
        raise TypeError('object with buffer protocol required')


def write_buffer(data):
    # mp_get_buffer_raise(MP_BUFFER_WRITE): bytes will not do
    view = read_buffer(data)
    try:
        view[0:0] = b''
    except TypeError:
        raise TypeError('object with buffer protocol required')
    return view


# ---- the host's sockets --------------------------------------------------------

def host_address(ip, port):
    """An (ip, port) as the host's sockets take it: raw sockaddr bytes."""
    return _hs.getaddrinfo(ip, port)[0][-1]


def board_address(raw):
    """A raw sockaddr from the host as a board gives it: (ip, port), or for
    IPv6 (ip, port, flowinfo, scope_id) (socketpool_ip_addr_and_port_to_tuple,
    convert_sockaddr)."""
    parts = _hs.sockaddr(raw)
    ip = _hs.inet_ntop(parts[0], parts[1])
    return (ip, parts[2]) if parts[0] == _hs.AF_INET else (ip, parts[2], parts[3], parts[4])


def host_socket(family, kind):
    sock = _hs.socket(_hs.AF_INET6 if family == 10 else _hs.AF_INET, kind)
    sock.settimeout(0)        # every wait is this re-creation's own
    return sock


# RUN_BACKGROUND_TASKS: what a board does while a socket call waits (the web
# workflow, Wi-Fi).  Here also what a test puts in this list: its clients in
# the same thread, which so read and hang up while the server waits, as the
# lwIP builds' callbacks let them.
background_tasks = []


def run_background():
    for task in list(background_tasks):
        task()


def sleep_ms(ms):
    run_background()
    _htime.sleep_ms(ms)


def host_events(sock, events, ms=0):
    """The host's poll() events of one host socket, waiting up to ms (a
    wait runs the background tasks first)."""
    if ms:
        run_background()
    poller = _hselect.poll()
    poller.register(sock, events)
    got = poller.poll(ms)
    return got[0][1] if got else 0


POLLRDHUP = 0x2000            # Linux: the peer's FIN has come, unread data or not


def reset_host(sock):
    """Close a host socket with a TCP reset (linger on, timeout 0)."""
    try:
        sock.setsockopt(_hs.SOL_SOCKET, _hs.SO_LINGER, struct.pack('ii', 1, 0))
    except OSError:
        pass
    sock.close()


def resolve(host, family=2):
    """The address lwIP's DNS gives for host: a literal as it is, a name from
    the host's resolver (lwIP asks the network's DNS server; here the host's
    /etc/hosts answers "localhost" too); else gaierror, as
    common_hal_socketpool_socketpool_raise_gaierror_noname raises it."""
    want = _hs.AF_INET6 if family == 10 else _hs.AF_INET
    try:
        for entry in _hs.getaddrinfo(host, 0) if host else ():
            if entry[0] == want:
                return board_address(entry[-1])[0]
    except OSError:
        pass
    raise gaierror(-2, 'Name or service not known')


class SendWindow:
    """lwIP's send buffer: what a send() hands over stays counted against it
    until the peer acknowledges it, ACK_MS later here (a Wi-Fi round trip;
    the host's loopback acknowledges at once).  Without it, the host's
    megabytes of socket buffers would never fill in a test."""

    ACK_MS = 5

    def __init__(self, size):
        self.size, self.flight = size, []

    def room(self):
        now = ticks()
        self.flight = [f for f in self.flight if _htime.ticks_diff(now, f[0]) < self.ACK_MS]
        return self.size - sum(f[1] for f in self.flight)

    def push(self, sock, view):
        """Hand view to the host socket; how much it took (0 when its own
        buffer is full)."""
        try:
            n = sock.send(view)
        except OSError as error:
            if error.args[0] != H_EAGAIN:
                raise
            return 0
        self.flight.append((ticks(), n))
        return n


# ---- socketpool ------------------------------------------------------------------

class gaierror(OSError):
    # SocketPool.c: MP_DEFINE_EXCEPTION(gaierror, OSError), raised with
    # (EAI_NONAME, "Name or service not known") by every port here
    pass


class Socket:
    """socketpool.Socket.  The binding (shared-bindings/socketpool/Socket.c)
    is here; each port's common-hal, in the underscored methods, in its
    flavour.  Exactly the binding's methods and no more: no recv, recvfrom,
    makefile, readline, read, shutdown, fileno, getsockname, gettimeout."""

    def __init__(self, *args, **kwargs):
        # The type has no make_new: SocketPool.socket() and accept() make them.
        raise TypeError("cannot create 'Socket' instances")

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc_value, traceback):
        self._close()

    def accept(self):
        return self._accept()

    def bind(self, address):
        host, port = get_address(address)
        error = self._bind(host, port)
        if error:
            raise OSError(error)

    def close(self):
        self._close()

    __del__ = close           # the finaliser; never run here (see the top)

    def connect(self, address):
        self._connect(*get_address(address))

    def listen(self, backlog):
        # no default backlog: MP_DEFINE_CONST_FUN_OBJ_2
        self._listen(get_int(backlog))

    def recvfrom_into(self, buffer):
        return self._recvfrom_into(write_buffer(buffer))

    def recv_into(self, buffer, *bufsize):
        # _socketpool_socket_recv_into: a closed socket says EBADF first; a
        # bufsize above the buffer's length is refused, 0 or less is ignored
        if len(bufsize) > 1:
            raise TypeError('function expected at most 3 arguments, got %d' % (len(bufsize) + 2))
        if self._closed():
            raise OSError(EBADF)
        view = write_buffer(buffer)
        size = len(view)
        if bufsize:
            given = get_int(bufsize[0])
            if given > size:
                raise ValueError('buffer too small for requested bytes')
            if 0 < given < size:
                size = given
        if size == 0:
            return 0
        return self._recv_into(view[:size])

    def _ready_to_send(self):
        # _socketpool_socket_send/sendall: EBADF if closed, BrokenPipeError
        # (args (EPIPE,)) unless the port calls the socket connected
        if self._closed():
            raise OSError(EBADF)
        if not self._connected():
            raise BrokenPipeError(EPIPE)

    def send(self, data):
        self._ready_to_send()
        return self._send(read_buffer(data))

    def sendall(self, data):
        # send() until all is sent: an error part-way raises, and the caller
        # cannot tell how much went
        self._ready_to_send()
        view = read_buffer(data)
        while len(view):
            view = view[self._send(view):]

    def sendto(self, data, address):
        view = read_buffer(data)
        host, port = get_address(address)
        return self._sendto(view, host, port)

    def setblocking(self, flag):
        self._settimeout(FOREVER if flag else 0)

    def setsockopt(self, level, optname, value):
        # socketpool_socket_setsockopt: an int travels as a 32-bit mp_int_t,
        # anything else as its buffer; the port answers 0 or -errno
        level, optname = get_int(level), get_int(optname)
        if isinstance(value, int):
            value = struct.pack('<i', ((value + 0x80000000) & 0xFFFFFFFF) - 0x80000000)
        else:
            value = bytes(read_buffer(value))
        error = self._setsockopt(level, optname, value)
        if error < 0:
            raise OSError(-error)

    def settimeout(self, value):
        self._settimeout(timeout_ms(value))

    type = property(lambda self: self._type)

    # The stream ioctl, MP_STREAM_POLL (socket_ioctl): readable and writable
    # only, never an error or hang-up bit.
    def _poll(self, events):
        ready = 0
        if events & POLLIN and self._readable():
            ready |= POLLIN
        if events & POLLOUT and self._writable():
            ready |= POLLOUT
        return ready


def make_socket(cls, host_sock, kind, family, **attributes):
    """A new Socket of the flavour's class, as common-hal makes one."""
    sock = object.__new__(cls)
    sock._h, sock._type, sock._family = host_sock, kind, family
    for key in attributes:
        setattr(sock, key, attributes[key])
    return sock


# Left behind by a port (an accepted connection with no socket free on the
# Pico W): unreachable, so the next garbage collection closes them.
orphans = []


def collect_garbage():
    # gc_collect() as the ports call it when no socket is free: it runs the
    # finalisers of unreachable sockets, of which this re-creation knows only
    # its own orphans.
    while orphans:
        orphans.pop()._close()


class Radio:
    """wifi.Radio, connected.  ipv4_address is where this re-creation's
    clients reach the board (on a board, an ipaddress.IPv4Address)."""
    enabled = connected = True
    ipv4_address = '127.0.0.1'


radio = Radio()


class SocketPool:
    # SocketPool.c and enum.h: the constants are class attributes (lwIP's
    # numbers, not Linux's), usable without an instance
    AF_INET, AF_INET6 = 2, 10
    SOCK_STREAM, SOCK_DGRAM, SOCK_RAW = 1, 2, 3
    EAI_NONAME = -2
    SOL_SOCKET, SO_REUSEADDR, TCP_NODELAY = 0xfff, 4, 1
    IPPROTO_IP, IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, IPPROTO_IPV6, IPPROTO_RAW = 0, 1, 6, 17, 41, 255
    IP_MULTICAST_TTL = 5
    gaierror = gaierror
    _port = None              # the flavour: new_socket(family, type, proto), getaddrinfo(...)

    def __init__(self, radio):
        # common_hal_socketpool_socketpool_construct, the same on both ports
        if radio is not _wifi.radio:
            raise ValueError('SocketPool can only be used with wifi.radio')

    def socket(self, family=AF_INET, type=SOCK_STREAM, proto=IPPROTO_IP):
        # socketpool_socketpool_socket: ints, by position or keyword
        return self._port.new_socket(get_int(family), get_int(type), get_int(proto))

    def getaddrinfo(self, host, port, family=0, type=0, *proto_and_flags, flags=0):
        # socketpool_socketpool_getaddrinfo: its fifth argument is declared
        # with the name "port" again, so proto can be given by position only
        if len(proto_and_flags) > 2:
            raise TypeError('function expected at most 7 arguments')
        proto = proto_and_flags[0] if proto_and_flags else 0
        if len(proto_and_flags) > 1:
            flags = proto_and_flags[1]
        return self._port.getaddrinfo(get_str(host), get_int(port), get_int(family),
                                      get_int(type), get_int(proto), get_int(flags))


_wifi = _Module('wifi', Radio=Radio, radio=radio)


# ---- select: extmod/modselect.c as boards build it -------------------------------
# Without MICROPY_PY_SELECT_POSIX_OPTIMISATIONS (the unix port's alone): only
# objects with a stream ioctl, polled one by one until one is ready or the
# timeout has passed; no integer descriptors.
POLLIN, POLLOUT, POLLERR, POLLHUP = 1, 4, 8, 16


def _stream(obj):
    # mp_get_stream_raise(obj, MP_STREAM_OP_IOCTL).  On a board other streams
    # (usb_cdc, sys.stdin) poll too; here only pool sockets do.
    if not isinstance(obj, Socket):
        raise OSError('stream operation not supported')


def _nap(entries, ms):
    # mp_event_wait_ms between rounds: here a host poll() on the sockets
    # underneath, so that an arrival ends the nap at once; 5 ms at most, so
    # that what this re-creation keeps itself (send windows) is seen.
    ms = min(ms, 5)
    run_background()
    poller, any_host = _hselect.poll(), False
    for entry in entries:
        host_sock = getattr(entry[0], '_h', None)
        if host_sock is not None:
            poller.register(host_sock, _hselect.POLLIN | (_hselect.POLLOUT if entry[1] & POLLOUT else 0))
            any_host = True
    if any_host:
        poller.poll(ms)
    else:
        _htime.sleep_ms(ms)


def _poll_until(entries, timeout):
    # poll_set_poll_until_ready_or_timeout; timeout in ms, None for ever
    start = ticks()
    while True:
        ready = 0
        for entry in entries:
            entry[2] = entry[0]._poll(entry[1])
            ready += entry[2] != 0
        elapsed = since(start)
        if ready or (timeout is not None and elapsed >= timeout):
            return ready
        if timeout is None and elapsed > FOREVER_HERE_MS:
            raise waited_for_ever('select.poll() with no timeout')
        _nap(entries, FOREVER_HERE_MS if timeout is None else timeout - elapsed)


class _Poll:
    def __init__(self):
        self._entries = []    # [obj, events, revents], in registration order

    def _find(self, obj):
        for entry in self._entries:
            if entry[0] is obj:
                return entry

    def register(self, obj, events=POLLIN | POLLOUT):
        entry = self._find(obj)
        if entry:
            entry[1] = get_int(events)
            return
        _stream(obj)
        self._entries.append([obj, get_int(events), 0])

    def unregister(self, obj):
        self._entries = [e for e in self._entries if e[0] is not obj]

    def modify(self, obj, events):
        entry = self._find(obj)
        if not entry:
            raise OSError(2)  # ENOENT
        entry[1] = get_int(events)

    def _wait(self, timeout):
        # poll_poll_internal: integer milliseconds; None or negative, for ever
        timeout = None if timeout is None else get_int(timeout)
        return _poll_until(self._entries, None if timeout is None or timeout < 0 else timeout)

    def poll(self, timeout=-1):
        self._wait(timeout)
        return [(e[0], e[2]) for e in self._entries if e[2]]

    def ipoll(self, timeout=-1, flags=0):
        # poll_ipoll; flag 1 (ONESHOT) stops reporting an object until modify()
        self._wait(timeout)
        ready = []
        for entry in self._entries:
            if entry[2]:
                ready.append((entry[0], entry[2]))
                if flags & 1:
                    entry[1] = 0
        return iter(ready)


def _select(rlist, wlist, xlist, timeout=None):
    # select_select: (mp_uint_t)(float timeout * 1000), negative or None for
    # ever; an object in several lists is polled once
    entries = []
    for objects, events in ((rlist, POLLIN), (wlist, POLLOUT), (xlist, POLLERR | POLLHUP)):
        for obj in objects:
            for entry in entries:
                if entry[0] is obj:
                    entry[1] |= events
                    break
            else:
                _stream(obj)
                entries.append([obj, events, 0])
    ms = None
    if timeout is not None:
        seconds = board_float(timeout)
        ms = int(f32(seconds * 1000)) if seconds >= 0 else None
    _poll_until(entries, ms)
    return ([e[0] for e in entries if e[2] & POLLIN],
            [e[0] for e in entries if e[2] & POLLOUT],
            [e[0] for e in entries if e[2] & ~(POLLIN | POLLOUT)])


select = _Module('select', poll=_Poll, select=_select,
                 POLLIN=POLLIN, POLLOUT=POLLOUT, POLLERR=POLLERR, POLLHUP=POLLHUP)


def install(port):
    """Make this port's socketpool the one `import socketpool` finds, with
    wifi, and the board's select, errno and time."""
    SocketPool._port = port
    sys.modules['socketpool'] = _Module('socketpool', SocketPool=SocketPool, Socket=Socket)
    sys.modules['wifi'] = _wifi
    sys.modules['select'] = select
    sys.modules['errno'] = errno
    sys.modules['time'] = time
