# esp32 board profile: importing this module replaces sys.modules['socket'],
# ['select'] and ['errno'] with Python re-creations of what MicroPython's esp32
# port offers, running on top of the real modules of the lwIP unix build
# (/tmp/mpb/micropython-lwip-threads: extmod/modlwip.c over in-process lwIP).
# Import it BEFORE anything else imports socket/select/errno.
#
# Source of every fact: MicroPython master 1c3c201 (2026-08), ports/esp32/modsocket.c
# (called "modsocket.c" below), extmod/modselect.c, py/stream.c, py/moderrno.c,
# shared/netutils/netutils.c; lwIP 2.2 (src/api/netdb.c, sockets.c); newlib
# sys/errno.h.  Not modelled: the 10-socket limit (CONFIG_LWIP_MAX_SOCKETS, ENFILE),
# closing by garbage collection (__del__), IPv6, mDNS, SO_BINDTODEVICE.
# _thread is left alone: esp32 has _thread WITH a GIL (ports/esp32/mpconfigport.h,
# MICROPY_PY_THREAD_GIL 1) and 4 KiB stacks; the lwip threads binary has no GIL.
import sys
import struct
import time
import socket as _rs
import select as _rsel
import errno as _re

try:
    import _thread
    _lock = _thread.allocate_lock()
except ImportError:
    class _NoLock:
        def __enter__(self):
            return self

        def __exit__(self, *a):
            return False
    _lock = _NoLock()


class _Module:
    def __init__(self, name, **attrs):
        self.__name__ = name
        for k in attrs:
            setattr(self, k, attrs[k])


# ---- errno: py/moderrno.c's default MICROPY_PY_ERRNO_LIST (22 names); esp32 sets
# MICROPY_USE_INTERNAL_ERRNO 0 (ports/esp32/mpconfigport.h), so the values come from
# newlib's sys/errno.h.  ESP-IDF's lwIP includes the same <errno.h>
# (components/lwip/port/.../arch/cc.h), so socket errors use these numbers too.
_NEWLIB = {
    'EPERM': 1, 'ENOENT': 2, 'EIO': 5, 'EBADF': 9, 'EAGAIN': 11, 'ENOMEM': 12,
    'EACCES': 13, 'EEXIST': 17, 'ENODEV': 19, 'EISDIR': 21, 'EINVAL': 22,
    'EOPNOTSUPP': 95, 'EADDRINUSE': 112, 'ECONNABORTED': 113, 'ECONNRESET': 104,
    'ENOBUFS': 105, 'ENOTCONN': 128, 'ETIMEDOUT': 116, 'ECONNREFUSED': 111,
    'EHOSTUNREACH': 118, 'EALREADY': 120, 'EINPROGRESS': 119,
}
errno = _Module('errno', errorcode=dict((v, k) for k, v in _NEWLIB.items()), **_NEWLIB)
EAGAIN, ETIMEDOUT, EINPROGRESS = 11, 116, 119   # newlib; EWOULDBLOCK == EAGAIN there
ENOTCONN, ENOENT = 128, 2

# Linux number (what the real modlwip raises) -> newlib number, matched by name.
_L2N = dict((getattr(_re, k), v) for k, v in _NEWLIB.items() if hasattr(_re, k))
_L2N[106] = 127                       # EISCONN (not in the errno module on either)
_L_WOULDBLOCK = (_re.EAGAIN, _re.ETIMEDOUT)   # the real socket's "timed out" answers


def _oserror(e):
    # OSErrors from the real lwIP socket carry Linux numbers: re-raise with newlib's.
    n = e.args[0] if e.args else None
    if isinstance(n, int) and n > 0:
        return OSError(_L2N.get(n, n))
    return e


def _f32(x):
    # esp32 uses single-precision floats (MICROPY_FLOAT_IMPL_FLOAT)
    return struct.unpack('f', struct.pack('f', x))[0]


def _get_int(v):
    # py/obj.c mp_obj_get_int: ints and bools only (a float raises TypeError)
    if not isinstance(v, int):
        raise TypeError("can't convert %s to int" % type(v).__name__)
    return v


def _get_str(v):
    if isinstance(v, bytes):
        return v.decode()
    if not isinstance(v, str):
        raise TypeError("can't convert '%s' object to str implicitly" % type(v).__name__)
    return v


def _pair(addr):
    # py/obj.c mp_obj_get_array_fixed_n(addr, 2): a tuple or list of two (raw sockaddr
    # bytes, the unix port's form, is refused)
    if not isinstance(addr, (tuple, list)):
        raise TypeError("object '%s' isn't a tuple or list" % type(addr).__name__)
    if len(addr) != 2:
        raise ValueError("requested length 2 but object has length %d" % len(addr))
    return addr[0], addr[1]


def _atoi(s):
    s = s.lstrip()
    i = 1 if s[:1] in ('-', '+') else 0
    j = i
    while j < len(s) and s[j] in '0123456789':
        j += 1
    return int(s[:j]) if j > i else 0


def _lookup(host, port, family=0):
    # modsocket.c _getaddrinfo_inner + lwIP netdb.c lwip_getaddrinfo.  Returns
    # (ip, port, canonname).  Hostnames are allowed here (bind, connect, getaddrinfo).
    if isinstance(port, int):
        port = '%s' % port                  # an int port is formatted with "%s"
    host, port = _get_str(host), _get_str(port)
    if host == '':
        host = '0.0.0.0'                    # "" means the any address
    if family not in (0, 2, 10):
        raise OSError(-204)                 # EAI_FAMILY, raised negated
    pn = _atoi(port)
    if (pn == 0 and port[:1] != '0') or pn < 0 or pn > 0xffff:
        raise OSError(-201)                 # EAI_SERVICE
    try:
        ip = _rs.getaddrinfo(host, pn)[0][-1][0]
    except OSError:
        raise OSError(-202)                 # EAI_FAIL: DNS lookup failed
    return ip, pn, host                     # lwIP copies the node name to canonname


def _parse_inet_addr(addr):
    # shared/netutils/netutils.c netutils_parse_inet_addr (used by sendto): an IPv4
    # literal only, "" = 0.0.0.0, each part wraps to a byte, trailing junk ignored.
    host, port = _pair(addr)
    host = _get_str(host)
    if host == '':
        return '0.0.0.0', _get_int(port)
    top = 0
    while top < len(host) and host[top] in '.0123456789':
        top += 1
    parts, s = [], 0
    for i in (3, 2, 1, 0):
        val = 0
        while s < top and host[s] != '.':
            val = val * 10 + ord(host[s]) - 48
            s += 1
        parts.append(val & 0xff)
        if i == 0 and s == top:
            break
        elif i > 0 and s < top and host[s] == '.':
            s += 1
        else:
            raise ValueError('invalid arguments')
    return '%d.%d.%d.%d' % tuple(parts), _get_int(port)


def getaddrinfo(host, port, af=0, type=0, proto=0, flags=0):
    # modsocket.c esp_socket_getaddrinfo: one IPv4 entry, canonname = the host given,
    # socktype 0 becomes SOCK_STREAM (lwIP echoes the hint).
    ip, pn, canon = _lookup(host, port, _get_int(af))
    return [(2, _get_int(type) or 1, _get_int(proto), canon, (ip, pn))]


_NEW, _CONNECTED, _PEER_CLOSED = 0, 1, 2    # modsocket.c SOCKET_STATE_*
# LWIP_SOCKET_OFFSET = FD_SETSIZE (64) - CONFIG_LWIP_MAX_SOCKETS (10, ESP-IDF default)
_FD_BASE = 54
_fds = []
_WARN = 'Warning: lwip.setsockopt() option not implemented'


class socket:
    # modsocket.c socket_make_new: 0-3 positional arguments, keywords refused.
    def __init__(self, *args, **kw):
        if kw:
            raise TypeError("function doesn't take keyword arguments")
        if len(args) > 3:
            raise TypeError('function expected at most 3 arguments, got %d' % len(args))
        a = list(args) + [2, 1, 0][len(args):]
        dom, typ, proto = _get_int(a[0]), _get_int(a[1]), _get_int(a[2])
        # lwip_socket ignores the domain apart from choosing IPv6 (not modelled)
        try:
            rs = _rs.socket(10 if dom == 10 else 2, typ, proto)
        except OSError as e:
            raise _oserror(e)
        self._init(rs, typ, _NEW if typ == 1 else _CONNECTED)

    def _init(self, rs, typ, state):
        self._s, self._type, self._state = rs, typ, state
        self._listening = self._conn = False
        with _lock:
            fd = _FD_BASE
            while fd in _fds:
                fd += 1            # lwIP alloc_socket takes the lowest free slot
            _fds.append(fd)
        self._fd = fd
        self.settimeout(None)      # every new or accepted socket starts blocking

    # modsocket.c _socket_settimeout: retries = timeout_ms / 100; each underlying
    # call waits at most 100 ms (SO_RCVTIMEO/SO_SNDTIMEO); the loops run retries+1
    # times.  So a timeout under 0.1 s still waits 100 ms, then reports EAGAIN
    # (retries == 0), not ETIMEDOUT.  None = UINT_MAX retries (forever).
    def settimeout(self, t):
        if t is None:
            ms = None
        else:
            # socket_settimeout: (uint64_t)(float32(t) * 1000.0f); negatives are UB in C
            ms = max(0, int(_f32(_f32(t) * 1000.0)))
        self._retries = None if ms is None else ms // 100
        self._nonblock = ms == 0       # fcntl(O_NONBLOCK) only for a 0 timeout
        if self._fd >= 0:
            self._s.settimeout(0 if self._nonblock else 0.1)

    def setblocking(self, flag):
        # modsocket.c socket_setblocking: blocking = timeout None, else timeout 0
        self.settimeout(None if flag else 0)

    def _more(self, i):
        return self._retries is None or i <= self._retries

    def _fail(self):
        return OSError(EAGAIN if self._retries == 0 else ETIMEDOUT)

    def fileno(self):
        return self._fd            # modsocket.c socket_fileno: the lwIP fd, -1 closed

    def makefile(self, *args):
        # modsocket.c socket_makefile: returns the socket itself (1 to 3 arguments)
        if len(args) > 2:
            raise TypeError('function expected at most 3 arguments, got %d' % (len(args) + 1))
        return self

    def close(self):
        # socket_stream_ioctl MP_STREAM_CLOSE: closing twice is harmless
        if self._fd >= 0:
            self._s.close()
            with _lock:
                _fds.remove(self._fd)
            self._fd = -1

    def bind(self, addr):
        # modsocket.c socket_bind: hostnames allowed; the state leaves NEW
        h, p = _pair(addr)
        ip, pn, _ = _lookup(h, p)
        self._state = _CONNECTED
        try:
            self._s.bind((ip, pn))
        except OSError as e:
            raise _oserror(e)

    def listen(self, backlog=2):
        # modsocket.c socket_listen: MICROPY_PY_SOCKET_LISTEN_BACKLOG_DEFAULT = 2
        # (py/mpconfig.h); a negative backlog becomes 0
        backlog = max(0, _get_int(backlog))
        self._state = _CONNECTED
        try:
            self._s.listen(backlog)
        except OSError as e:
            raise _oserror(e)
        self._listening = True

    def accept(self):
        # modsocket.c socket_accept: retries+1 waits of 100 ms, then EAGAIN (retries
        # 0) or ETIMEDOUT.  The new socket is BLOCKING whatever the listener's timeout
        # (_socket_settimeout(sock, UINT64_MAX)), unlike the unix port.
        i = 0
        while self._more(i):
            try:
                rs, addr = self._s.accept()
            except OSError as e:
                if e.args[0] not in _L_WOULDBLOCK:
                    raise _oserror(e)
                i += 1
                continue
            new = object.__new__(socket)
            new._init(rs, self._type, _CONNECTED)
            new._conn = True
            return new, addr       # (ip, port) via netutils_format_inet_addr
        raise self._fail()

    def connect(self, addr):
        # modsocket.c socket_connect: hostnames allowed; state set before trying.
        h, p = _pair(addr)
        ip, pn, _ = _lookup(h, p)
        self._state = _CONNECTED
        self._conn = True
        if self._nonblock:
            # lwIP's BSD connect on a non-blocking TCP socket always answers EINPROGRESS,
            # even where the in-process loopback connects at once.
            try:
                self._s.connect((ip, pn))
            except OSError as e:
                raise _oserror(e)
            if self._type == 1:
                raise OSError(EINPROGRESS)
            return
        # Blocking: select() for writability in 100 ms steps, retries+1 times, then
        # ETIMEDOUT (even when retries == 0).
        r = self._retries
        self._s.settimeout(None if r is None else (r + 1) * 0.1)
        try:
            self._s.connect((ip, pn))
        except OSError as e:
            raise OSError(ETIMEDOUT) if e.args[0] == _re.ETIMEDOUT else _oserror(e)
        finally:
            self._s.settimeout(0.1)

    def setsockopt(self, level, opt, val):
        # modsocket.c socket_setsockopt switches on opt alone (level is ignored);
        # unknown options print a warning and do nothing.
        opt = _get_int(opt)
        rs = self._s
        if opt in (SO_REUSEADDR, SO_BROADCAST):
            real = _rs.SO_REUSEADDR if opt == SO_REUSEADDR else _rs.SO_BROADCAST
            rs.setsockopt(_rs.SOL_SOCKET, real, _get_int(val))
        elif opt == TCP_NODELAY:
            if self._type != 1:
                raise OSError(109)     # lwIP: IPPROTO_TCP option on a non-TCP socket -> ENOPROTOOPT
            rs.setsockopt(_rs.IPPROTO_TCP, _rs.TCP_NODELAY, _get_int(val))
        elif opt == IP_ADD_MEMBERSHIP:
            if len(val) != 8:
                raise ValueError
            rs.setsockopt(_rs.IPPROTO_IP, _rs.IP_ADD_MEMBERSHIP, val)
        elif opt == SO_BINDTODEVICE:
            _get_str(val)              # accepted; interfaces are not modelled
        elif opt == 20:                # MICROPY_PY_SOCKET_EVENTS (on with WebREPL)
            rs.setsockopt(_rs.SOL_SOCKET, 20, None if val is None else (lambda s: val(self)))
        else:
            print(_WARN)

    # ---- reading: modsocket.c _socket_read_data
    def _read(self, n, flags=0, addr=False):
        if self._state == _NEW:
            raise OSError(ENOTCONN)    # "A new socket cannot be read from."
        if self._state == _PEER_CLOSED:
            # after one 0-byte read every read returns 0 at once (POSIX emulation).
            # recvfrom's address is then an uninitialised struct: 0.0.0.0:0 here.
            return b'', ('0.0.0.0', 0)
        rflags = (_rs.MSG_PEEK if flags & MSG_PEEK else 0) | \
                 (_rs.MSG_DONTWAIT if flags & MSG_DONTWAIT else 0)
        i = 0
        while self._more(i):
            try:
                if addr:
                    data, a = self._s.recvfrom(n, rflags)
                else:
                    data, a = self._s.recv(n, rflags), None
            except OSError as e:
                if e.args[0] not in _L_WOULDBLOCK or flags & MSG_DONTWAIT:
                    raise _oserror(e)
                i += 1
                continue
            if not data:
                # r == 0 sets PEER_CLOSED for ANY socket type: on esp32 one empty UDP
                # datagram makes every later recv/recvfrom return b'' immediately.
                self._state = _PEER_CLOSED
            return data, a
        raise self._fail()             # EWOULDBLOCK (== EAGAIN) or ETIMEDOUT

    def recv(self, n, flags=0):
        return self._read(_get_int(n), _get_int(flags))[0]

    def recvfrom(self, n, flags=0):
        return self._read(_get_int(n), _get_int(flags), True)

    # ---- sending
    def _send(self, data):
        # modsocket.c _socket_send: loop until all is sent or retries+1 attempts;
        # nothing sent -> EWOULDBLOCK/ETIMEDOUT.  So send(b"") raises ETIMEDOUT on a
        # blocking socket (EAGAIN on a non-blocking one) without sending.
        mv = memoryview(data)
        sent, i = 0, 0
        while self._more(i) and sent < len(mv):
            try:
                sent += self._s.send(mv[sent:])
            except OSError as e:
                # lwip says EINPROGRESS when writing right after a non-blocking connect
                if e.args[0] not in _L_WOULDBLOCK and e.args[0] != _re.EINPROGRESS:
                    raise _oserror(e)
            i += 1
        if sent == 0:
            raise self._fail()
        return sent

    def send(self, data):              # no flags argument on esp32
        return self._send(data)

    def sendall(self, data):
        # modsocket.c socket_sendall: one _socket_send, a short count -> ETIMEDOUT
        if self._send(data) < len(data):
            raise OSError(ETIMEDOUT)

    def sendto(self, data, addr):
        # modsocket.c socket_sendto: the address must be an IPv4 literal; retries+1
        # attempts, each succeeding only if it sent > 0 bytes; then ETIMEDOUT (even for
        # a non-blocking socket).  An empty datagram "sends 0", so sendto(b"") resends
        # empty datagrams retries+1 times -- for ever on a blocking socket.  Here that
        # endless case gives up after 3 s with AssertionError so a test cannot hang.
        ip, pn = _parse_inet_addr(addr)
        i, t0 = 0, time.ticks_ms()
        while self._more(i):
            try:
                r = self._s.sendto(data, (ip, pn))
            except OSError as e:
                if e.args[0] == _re.ENOMEM and not len(data):
                    time.sleep_ms(1)   # in-process loopback full of empty datagrams
                    continue
                if e.args[0] not in _L_WOULDBLOCK:
                    raise _oserror(e)
                r = 0
            if r > 0:
                return r
            i += 1
            if self._retries is None:
                time.sleep_ms(1)
                if time.ticks_diff(time.ticks_ms(), t0) > 3000:
                    raise AssertionError("esp32: sendto(b'') on a blocking socket never returns")
        raise OSError(ETIMEDOUT)

    # ---- stream methods: py/stream.c over socket_stream_read / socket_stream_write
    def _write1(self, mv):
        # modsocket.c socket_stream_write: one write that succeeds with > 0 bytes
        i = 0
        while self._more(i):
            try:
                r = self._s.send(mv)
                if r > 0:
                    return r
            except OSError as e:
                if e.args[0] not in _L_WOULDBLOCK and e.args[0] != _re.EINPROGRESS:
                    raise _oserror(e)
            i += 1
        raise self._fail()

    def _read1(self, mv):
        data = self._read(len(mv))[0]
        mv[:len(data)] = data
        return len(data)

    def _rw(self, io, mv):
        # py/stream.c mp_stream_rw: loop until done or 0; an EAGAIN after some data
        # is dropped, any other error after some data loses that data.
        done = 0
        while done < len(mv):
            try:
                n = io(mv[done:])
            except OSError as e:
                if e.args[0] == EAGAIN and done:
                    return done, 0
                return done, e.args[0]
            if n == 0:
                break
            done += n
        return done, 0

    def _result(self, done, err):
        # mp_stream_write / stream_read_generic: EAGAIN with nothing done -> None
        if err:
            if err == EAGAIN:
                return None
            raise OSError(err)
        return done

    def write(self, buf, *args):
        mv = memoryview(buf)
        if len(args) == 1:
            mv = mv[:args[0]]
        elif len(args) == 2:
            mv = mv[args[0]:args[0] + args[1]]
        return self._result(*self._rw(self._write1, mv))

    def readinto(self, buf, nbytes=-1):
        mv = memoryview(buf)
        if nbytes >= 0:
            mv = mv[:nbytes]
        return self._result(*self._rw(self._read1, mv))

    def read(self, n=-1):
        if n is None or n == -1:
            # py/stream.c stream_readall: until EOF; EAGAIN -> what was read, or None
            out = b''
            while True:
                try:
                    d = self._read(256)[0]
                except OSError as e:
                    if e.args[0] == EAGAIN:
                        return out if out else None
                    raise
                if not d:
                    return out
                out += d
        buf = bytearray(n)
        r = self._result(*self._rw(self._read1, memoryview(buf)))
        return None if r is None else bytes(buf[:r])

    def readline(self, size=-1):
        # py/stream.c stream_unbuffered_readline: one byte at a time; EAGAIN before
        # any byte -> None, after some bytes -> the partial line.  With a timeout under
        # 0.1 s every read ends in EAGAIN, so readline() returns None (or a fragment).
        out = b''
        while size == -1 or len(out) < size:
            try:
                d = self._read(1)[0]
            except OSError as e:
                if e.args[0] == EAGAIN:
                    return out if out else None
                raise
            if not d:
                break
            out += d
            if d == b'\n':
                break
        return out

    # ---- poll support: modsocket.c socket_stream_ioctl(MP_STREAM_POLL)
    def _poll(self, ev):
        if self._fd < 0:
            return POLLNVAL
        if self._state == _NEW:
            return (ev & POLLOUT) | POLLHUP    # "New (unconnected) sockets are writable and have HUP set."
        if self._type == 1 and not (self._conn or self._listening):
            return 0                # bound only: lwIP select() sees no event
        p = _rsel.poll()
        p.register(self._s, ev & (POLLIN | POLLOUT))
        r = p.poll(0)
        rr = r[0][1] if r else 0
        ret = rr & ev & (POLLIN | POLLOUT)
        if self._listening:
            ret &= ~POLLOUT          # a listening lwIP socket has no sendevent
        if rr & (POLLERR | POLLHUP):
            # a reset/aborted connection: lwIP posts RCVPLUS, SENDPLUS and ERROR; esp32
            # reports HUP only if it was asked for (exceptfds) and never POLLERR.
            ret |= ev & (POLLIN | POLLOUT | POLLHUP)
        return ret


SOCK_STREAM, SOCK_DGRAM, SOCK_RAW = 1, 2, 3                 # lwIP sockets.h values
SOL_SOCKET, SO_REUSEADDR, SO_BROADCAST, SO_BINDTODEVICE = 0xfff, 4, 0x20, 0x100b
IPPROTO_IP, IPPROTO_TCP, IPPROTO_UDP = 0, 6, 17
IP_ADD_MEMBERSHIP, TCP_NODELAY, MSG_PEEK, MSG_DONTWAIT = 3, 1, 1, 8
POLLIN, POLLOUT, POLLERR, POLLHUP, POLLNVAL = 1, 4, 8, 16, 32   # MP_STREAM_POLL_*

# modsocket.c mp_module_socket_globals_table: no AF_UNIX, SOMAXCONN, SHUT_*,
# socketpair, inet_ntop, sockaddr.
sock_mod = _Module(
    'socket', socket=socket, getaddrinfo=getaddrinfo, AF_INET=2, AF_INET6=10,
    SOCK_STREAM=1, SOCK_DGRAM=2, SOCK_RAW=3, IPPROTO_TCP=6, IPPROTO_UDP=17,
    IPPROTO_IP=0, SOL_SOCKET=SOL_SOCKET, SO_REUSEADDR=4, SO_BROADCAST=0x20,
    SO_BINDTODEVICE=SO_BINDTODEVICE, IP_ADD_MEMBERSHIP=3, TCP_NODELAY=1,
    MSG_PEEK=1, MSG_DONTWAIT=8)


# ---- select: extmod/modselect.c without MICROPY_PY_SELECT_POSIX_OPTIMISATIONS
# (esp32 leaves it 0): only objects with a stream ioctl can be polled.
def _pollable(obj):
    # mp_get_stream_raise(obj, MP_STREAM_OP_IOCTL) -- an int fd is refused
    if isinstance(obj, socket):
        return
    if not isinstance(obj, int):
        try:
            _rsel.poll().register(obj, 0)
            return
        except OSError:
            pass
    raise OSError('stream operation not supported')


def _ioctl(obj, ev):
    if isinstance(obj, socket):
        return obj._poll(ev)
    p = _rsel.poll()
    p.register(obj, ev)
    r = p.poll(0)
    return r[0][1] if r else 0


def _poll_until(entries, timeout):
    # poll_set_poll_until_ready_or_timeout: poll every object, wait 1 ms, repeat
    t0 = time.ticks_ms()
    while True:
        n = 0
        for e in entries:
            e[2] = _ioctl(e[0], e[1])
            n += e[2] != 0
        if n or (timeout is not None and time.ticks_diff(time.ticks_ms(), t0) >= timeout):
            return n
        time.sleep_ms(1)


class _Poll:
    def __init__(self):
        self._e = []               # [obj, events, revents] in registration order
        self._bad = []

    def _find(self, obj):
        for e in self._e:
            if e[0] is obj:
                return e

    def register(self, obj, events=POLLIN | POLLOUT):
        e = self._find(obj)
        if e:
            e[1] = _get_int(events)
            return
        try:
            _pollable(obj)
        except OSError:
            # poll_set_add_obj leaves an empty map entry behind: the next poll() on
            # this poller dereferences NULL (a board crash) until it is unregistered.
            self._bad.append(obj)
            raise
        self._e.append([obj, _get_int(events), 0])

    def unregister(self, obj):     # poll_unregister: unknown objects are ignored
        self._e = [e for e in self._e if e[0] is not obj]
        self._bad = [b for b in self._bad if b is not obj]

    def modify(self, obj, events):
        e = self._find(obj)
        if not e:
            raise OSError(ENOENT)
        e[1] = _get_int(events)

    def _wait(self, timeout):
        if self._bad:
            raise AssertionError('esp32: poll() after a failed register() crashes '
                                 '(extmod/modselect.c poll_set_add_obj)')
        # poll_poll_internal: integer milliseconds (a float raises TypeError),
        # None or negative = wait for ever
        t = None if timeout is None else _get_int(timeout)
        return _poll_until(self._e, None if t is None or t < 0 else t)

    def poll(self, timeout=-1):
        self._wait(timeout)
        return [(e[0], e[2]) for e in self._e if e[2]]

    def ipoll(self, timeout=-1, flags=0):
        # poll_ipoll/poll_iternext; FLAG_ONESHOT (1) clears an object's events once
        # reported.  (The C version reuses one result tuple.)
        self._wait(timeout)
        out = []
        for e in self._e:
            if e[2]:
                out.append((e[0], e[2]))
                if flags & 1:
                    e[1] = 0
        return iter(out)


def _select(rlist, wlist, xlist, timeout=None):
    # modselect.c select_select: lists or tuples; timeout float seconds (float32 *
    # 1000, truncated), negative or None = for ever.  Objects are merged by identity;
    # the x list gets anything other than RD/WR, e.g. the HUP of a new socket.
    entries = []
    for lst, ev in ((rlist, POLLIN), (wlist, POLLOUT), (xlist, POLLERR | POLLHUP)):
        if not isinstance(lst, (tuple, list)):
            raise TypeError("object '%s' isn't a tuple or list" % type(lst).__name__)
        for obj in lst:
            for e in entries:
                if e[0] is obj:
                    e[1] |= ev
                    break
            else:
                _pollable(obj)
                entries.append([obj, ev, 0])
    t = None
    if timeout is not None:
        f = _f32(timeout)
        t = int(_f32(f * 1000)) if f >= 0 else None
    _poll_until(entries, t)
    return ([e[0] for e in entries if e[2] & POLLIN],
            [e[0] for e in entries if e[2] & POLLOUT],
            [e[0] for e in entries if e[2] & ~(POLLIN | POLLOUT)])


select_mod = _Module('select', poll=_Poll, select=_select, POLLIN=POLLIN,
                     POLLOUT=POLLOUT, POLLERR=POLLERR, POLLHUP=POLLHUP)

sys.modules['socket'] = sock_mod
sys.modules['select'] = select_mod
sys.modules['errno'] = errno
