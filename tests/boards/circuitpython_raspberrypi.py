# CircuitPython on the Raspberry Pi Pico W and Pico 2 W ("raspberrypi"):
# importing this module installs socketpool, wifi, select, errno and time as
# that port has them (see circuitpython_common.py), over the host's sockets.
#
# Its sockets are lwIP's raw API, driven from Python calls and lwIP callbacks.
# Source: adafruit/circuitpython cd3da4a5d8, ports/raspberrypi/common-hal/
# socketpool/Socket.c ("Socket.c" below), SocketPool.c, __init__.c and
# lwip_inc/lwipopts.h.  Where a comment says "lwIP", the fact is lwIP's own
# (2.x, ports/raspberrypi/lib/lwip), not in CircuitPython's sources.
#
# Here, lwIP's callbacks are what the host's socket shows when this module
# looks (_sync): the peer's FIN (POLLRDHUP), a reset (POLLERR), a connection
# completed.  Not re-created: the single pbuf chain's boundaries (a read takes
# what the host has, up to 1460 bytes, where lwIP stops at the end of each
# segment), the receive window (TCP_WND 11,680 bytes), lwIP's ERR_MEM retries
# in tcp_write, the 10 s abort of a connection not closed cleanly, and two
# listeners both with SO_REUSEADDR on one port (lwIP binds both and refuses
# the second listen() with ENOMEM; the host refuses the bind, EADDRINUSE).
import circuitpython_common as cp
from circuitpython_common import (
    EAGAIN, EALREADY, EBADF, ECONNRESET, EHOSTUNREACH, EINPROGRESS, EINVAL, EIO,
    EISCONN, ENOMEM, ENOTCONN, EOPNOTSUPP, ETIMEDOUT, FOREVER)
import _hostsocket as _hs
import select as _hselect

# Socket.h: the socket's state, or a negative lwIP error once one came.
NEW, LISTENING, CONNECTING, CONNECTED, PEER_CLOSED, ACTIVE_UDP = 0, 1, 2, 3, 4, 5
ERR_RST, ERR_BADF = -14, -17
# Socket.c error_lookup_table: -err to errno (ERR_TIMEOUT and ERR_WOULDBLOCK
# are EWOULDBLOCK, EAGAIN's number in newlib).
_LOOKUP = (0, ENOMEM, 105, EAGAIN, EHOSTUNREACH, EINPROGRESS, EINVAL, EAGAIN, 112,
           EALREADY, EALREADY, ENOTCONN, -1, 113, ECONNRESET, ENOTCONN, EIO, EBADF)
STREAM, DGRAM = 1, 2
MAX_SOCKETS = 8               # Socket.c MAX_SOCKETS: open_socket_objs
TCP_MSS = 1460                # lwipopts.h
TCP_SND_BUF = 8 * TCP_MSS     # lwipopts.h: 11,680 bytes
_H_IN, _H_OUT, _H_ERR = _hselect.POLLIN, _hselect.POLLOUT, _hselect.POLLERR
_open = []                    # Socket.c open_socket_objs


def _register(sock):
    # register_open_socket: a free entry of the 8, after a gc_collect() if
    # there is none at first
    if len(_open) >= MAX_SOCKETS:
        cp.collect_garbage()
        if len(_open) >= MAX_SOCKETS:
            return False
    _open.append(sock)
    return True


def _to_itself(ip, port):
    # lwipopts.h builds no loopback interface (LWIP_HAVE_LOOPIF and
    # LWIP_NETIF_LOOPBACK are lwIP's default 0): lwIP's ip4_route finds no
    # netif for 127.x, so the board cannot reach its own sockets there: ERR_RTE,
    # EHOSTUNREACH.  Here 127.0.0.1 is also where the tests' clients are (the
    # host's loopback stands for the network), so only a port one of this
    # board's sockets has bound counts as the board itself.
    return ip.startswith('127.') and any(s._port == port for s in _open if s._h)


def _ipv4_literal(host):
    # ipaddress_parse_ipv4address: four decimal numbers of 0-255
    parts = host.split('.')
    return len(parts) == 4 and all(p.isdigit() and int(p) < 256 for p in parts)


class PicoSocket(cp.Socket):

    def _lookup(self):
        return _LOOKUP[-self._state]

    def _sync(self):
        # lwIP's callbacks, as packets arrive: _lwip_tcp_recv(p == NULL) marks
        # the peer's FIN; _lwip_tcp_error makes the state the error and the
        # pcb NULL, unread input freed with it; _lwip_tcp_connected ends a
        # connect.
        if self._type != STREAM or self._h is None or self._state in (NEW, LISTENING):
            return
        events = cp.host_events(self._h, _H_IN | cp.POLLRDHUP | _H_OUT)
        if events & _H_ERR:
            self._h.close()
            self._h, self._state = None, ERR_RST
        elif self._state == CONNECTING and events & _H_OUT:
            self._state = CONNECTED
        elif self._state == CONNECTED and events & cp.POLLRDHUP:
            self._state = PEER_CLOSED

    def _closed(self):
        # common_hal_socketpool_socket_get_closed: the pcb is gone (closed, or reset)
        self._sync()
        return self._h is None

    def _connected(self):
        # common_hal_socketpool_socket_get_connected: STATE_CONNECTED only, so
        # sending once the peer's FIN has come is BrokenPipeError: a client
        # that half-closes after its request gets no reply.
        self._sync()
        return self._state == CONNECTED

    def _settimeout(self, ms):
        self._timeout = ms

    # ---- listening and accepting
    def _listen(self, backlog):
        # common_hal_socketpool_socket_listen
        if self._type != STREAM:
            raise OSError(EOPNOTSUPP)
        if self._h is None:
            raise OSError(ENOMEM)        # tcp_listen_with_backlog(NULL) gives NULL
        # Connections wait in a ring of `backlog` slots (one slot for a backlog
        # of 0 or 1); the count is kept in a uint8_t, so a backlog of 256 makes
        # the ring's array pointer read as a queued pcb.
        slots = backlog & 0xFF if backlog > 1 else 1
        if slots == 0:
            raise AssertionError('listen(%d): the Pico W reads its ring pointer as a '
                                 'waiting pcb (incoming.connection.alloc is a uint8_t)' % backlog)
        try:
            self._h.listen(128)          # the ring, not the host, limits the queue
        except OSError:
            raise OSError(ENOMEM)
        self._state, self._ring, self._slots = LISTENING, [], slots

    def _take_arrivals(self):
        # _lwip_tcp_accept: a connection lwIP has completed takes the ring's
        # next slot; with none free the callback answers ERR_BUF and lwIP
        # resets the connection (lwIP tcp_in.c).  _lwip_tcp_err_unaccepted: a
        # connection reset while it waits leaves the ring, unseen by accept().
        kept = []
        for entry in self._ring:
            if cp.host_events(entry[0], 0) & _H_ERR:
                entry[0].close()
            else:
                kept.append(entry)
        self._ring = kept
        for _ in range(64):
            try:
                conn, raw = self._h.accept()
            except OSError:
                break
            conn.settimeout(0)
            if cp.host_events(conn, 0) & _H_ERR:
                conn.close()
            elif len(self._ring) < self._slots:
                self._ring.append((conn, raw))
            else:
                cp.reset_host(conn)

    def _accept(self):
        # socketpool_socket_accept, then common_hal_socketpool_socket_accept
        if self._type != STREAM:
            raise OSError(EOPNOTSUPP)
        if self._closed():
            raise OSError(EBADF)
        if self._state != LISTENING:
            raise OSError(EINVAL)
        self._take_arrivals()
        if not self._ring:
            if self._timeout == 0:
                raise OSError(EAGAIN)
            if self._timeout != FOREVER:
                # whole 100 ms steps, timeout // 100 of them: under 0.1 s, none
                retries = self._timeout // 100
                while not self._ring:
                    if retries == 0:
                        raise OSError(ETIMEDOUT)
                    retries -= 1
                    cp.sleep_ms(100)
                    self._take_arrivals()
            else:
                start = cp.ticks()
                while not self._ring:
                    if cp.since(start) > cp.FOREVER_HERE_MS:
                        raise cp.waited_for_ever('accept() without a timeout')
                    cp.host_events(self._h, _H_IN, 5)
                    self._take_arrivals()
        conn, raw = self._ring.pop(0)
        # The new socket has the listener's timeout, and is CONNECTED.
        accepted = cp.make_socket(PicoSocket, conn, STREAM, 2, _timeout=self._timeout,
                                  _state=CONNECTED, _peer=None, _port=None,
                                  _window=cp.SendWindow(TCP_SND_BUF))
        if not _register(accepted):
            # The connection has left the ring already: it is lost, its socket
            # unreachable until a garbage collection closes it.
            cp.orphans.append(accepted)
            raise RuntimeError('Out of sockets')
        return accepted, cp.board_address(raw)

    # ---- binding and connecting
    def _bind(self, host, port):
        # common_hal_socketpool_socket_bind: "" is any address, anything else
        # resolved ("0.0.0.0" too, a literal); lwIP's answer as an errno
        if self._h is None:
            return EIO                   # lwIP tcp_bind/udp_bind: NULL pcb, ERR_ARG
        ip = cp.resolve(host) if host else '0.0.0.0'
        try:
            self._h.bind(cp.host_address(ip, port))
        except OSError as error:
            return cp.host_errno(error)  # ERR_USE: EADDRINUSE
        self._port = port
        return 0

    def _connect(self, host, port):
        # common_hal_socketpool_socket_connect
        if self._h is None:
            raise OSError(EBADF)
        ip = cp.resolve(host)
        if self._type == DGRAM:
            # udp_connect: no route is looked for until a send
            self._h.connect(cp.host_address(ip, port))
            self._state, self._peer = CONNECTED, (ip, port)
            return
        if self._state != NEW:
            raise OSError(EISCONN if self._state == CONNECTED else EALREADY)
        if _to_itself(ip, port):
            raise OSError(EHOSTUNREACH)  # tcp_connect: no route, ERR_RTE
        self._state = CONNECTING
        try:
            self._h.connect(cp.host_address(ip, port))
        except OSError as error:
            if error.args[0] != cp.H_EINPROGRESS:
                self._state = NEW
                raise OSError(cp.host_errno(error))
        self._peer = (ip, port)
        if self._timeout != FOREVER:
            # timeout // 100 waits of 100 ms; still connecting: EINPROGRESS
            # (at once for a non-blocking socket), the connect going on
            for _ in range(self._timeout // 100):
                cp.sleep_ms(100)
                self._sync()
                if self._state != CONNECTING:
                    break
            if self._state == CONNECTING:
                raise OSError(EINPROGRESS)
        else:
            start = cp.ticks()
            while self._state == CONNECTING:
                if cp.since(start) > cp.FOREVER_HERE_MS:
                    raise cp.waited_for_ever('connect() without a timeout')
                cp.host_events(self._h, _H_OUT, 5)
                self._sync()
        if self._state != CONNECTED:
            # a refused connection is a reset to lwIP: ECONNRESET, not ECONNREFUSED
            raise OSError(self._lookup())

    # ---- receiving
    def _has_input(self):
        if self._h is None:
            return False
        try:
            return bool(self._h.recv(1, _hs.MSG_PEEK | _hs.MSG_DONTWAIT))
        except OSError:
            return False

    def _tcp_receive(self, view):
        # lwip_tcp_receive
        self._sync()
        if self._state < 0:
            raise OSError(self._lookup())
        if self._state == LISTENING:
            raise OSError(ENOTCONN)
        if not self._has_input():
            if self._timeout == 0:
                if self._state == PEER_CLOSED:
                    return 0
                raise OSError(EAGAIN)
            # waits in 1 ms polls while connected; the timeout is passed once
            # more than `timeout` ms have gone
            start = cp.ticks()
            while self._state == CONNECTED and not self._has_input():
                if self._timeout != FOREVER and cp.since(start) > self._timeout:
                    raise OSError(ETIMEDOUT)
                if self._timeout == FOREVER and cp.since(start) > cp.FOREVER_HERE_MS:
                    raise cp.waited_for_ever('recv_into() without a timeout')
                cp.host_events(self._h, _H_IN | cp.POLLRDHUP, 1)
                self._sync()
            if self._state == PEER_CLOSED:
                if not self._has_input():
                    return 0
            elif self._state != CONNECTED:
                raise OSError(ENOTCONN if self._state >= 0 else self._lookup())
        # what is left of the first pbuf: one segment, TCP_MSS at most
        data = self._h.recv(min(len(view), TCP_MSS))
        view[:len(data)] = data
        return len(data)

    def _take_datagrams(self):
        # _lwip_udp_incoming: the socket holds one datagram; any arriving while
        # it is unread is dropped ("no room in the inn")
        if self._h is None:
            return
        for _ in range(256):
            try:
                datagram = self._h.recvfrom(65535)
            except OSError:
                break
            if self._slot is None:
                self._slot = datagram

    def _udp_receive(self, view):
        # lwip_raw_udp_receive: (bytes copied, sender); the rest of a longer
        # datagram is lost
        self._take_datagrams()
        if self._slot is None:
            if self._timeout == 0:
                raise OSError(EAGAIN)
            start = cp.ticks()
            while self._slot is None:
                if self._timeout != FOREVER and cp.since(start) > self._timeout:
                    raise OSError(ETIMEDOUT)
                if self._timeout == FOREVER and cp.since(start) > cp.FOREVER_HERE_MS:
                    raise cp.waited_for_ever('receiving a datagram without a timeout')
                if self._h is None:      # closed: the pcb's callback is gone
                    cp.sleep_ms(1)
                else:
                    cp.host_events(self._h, _H_IN, 1)
                self._take_datagrams()
        data, raw = self._slot
        self._slot = None
        size = min(len(data), len(view))
        view[:size] = data[:size]
        return size, cp.board_address(raw)

    def _recv_into(self, view):
        # socketpool_socket_recv_into
        if self._type == STREAM:
            return self._tcp_receive(view)
        return self._udp_receive(view)[0]

    def _recvfrom_into(self, view):
        # common_hal_socketpool_socket_recvfrom_into.  On a stream socket the
        # address is socket->peer, which only connect() sets: an accepted
        # socket's is 0.0.0.0, port 0.
        if self._type == STREAM:
            peer = self._peer or ('0.0.0.0', 0)
            return self._tcp_receive(view), peer
        return self._udp_receive(view)

    # ---- sending
    def _tcp_send(self, view):
        # lwip_tcp_send: as much as the send buffer (TCP_SND_BUF) has room
        # for; with none, EAGAIN if non-blocking, else a wait in 1 ms polls,
        # up to the timeout, until at least 16 bytes are free
        self._sync()
        if self._state < 0:
            raise OSError(self._lookup())
        if self._state != CONNECTING and self._window.room() > 0:
            sent = self._push(view)
            if sent:
                return sent
        if self._timeout == 0:
            raise OSError(EAGAIN)
        start = cp.ticks()
        while True:
            self._sync()
            if self._state < 0:
                raise OSError(self._lookup())
            if self._state != CONNECTING and self._window.room() >= 16:
                sent = self._push(view)
                if sent:
                    return sent
            if self._timeout != FOREVER and cp.since(start) > self._timeout:
                raise OSError(ETIMEDOUT)
            if self._timeout == FOREVER and cp.since(start) > cp.FOREVER_HERE_MS:
                raise cp.waited_for_ever('send() without a timeout')
            cp.host_events(self._h, _H_OUT, 1)

    def _push(self, view):
        try:
            return self._window.push(self._h, view[:self._window.room()])
        except OSError:
            raise OSError(ECONNRESET)

    def _udp_send(self, view, to=None):
        # lwip_raw_udp_send: at most 0xffff bytes, sent whole or not at all
        if self._h is None:
            raise OSError(EIO)           # lwIP udp_send(to) with a NULL pcb: ERR_ARG
        size = min(len(view), 0xFFFF)
        if _to_itself(*(to or self._peer)):
            raise OSError(EHOSTUNREACH)
        try:
            if to:
                self._h.sendto(view[:size], cp.host_address(*to))
            else:
                self._h.send(view[:size])
        except OSError as error:
            raise OSError(cp.host_errno(error))
        return size

    def _send(self, view):
        if self._type == STREAM:
            return self._tcp_send(view)
        return self._udp_send(view)

    def _sendto(self, view, host, port):
        # common_hal_socketpool_socket_sendto: the address is resolved first;
        # a stream socket then ignores it
        ip = cp.resolve(host)
        if self._type == STREAM:
            return self._tcp_send(view)
        return self._udp_send(view, (ip, port))

    # ---- options
    def _setsockopt(self, level, option, value):
        # common_hal_socketpool_socket_setsockopt: three options; "enable" is
        # a 4-byte value (the size of a pointer on the RP2040/RP2350) that is
        # not zero.  Anything else is EOPNOTSUPP.
        enable = int(len(value) == 4 and value != b'\0\0\0\0')
        if level == 0 and option == 5:   # IPPROTO_IP, IP_MULTICAST_TTL
            if self._type != DGRAM:
                return -EOPNOTSUPP
            if self._h is None or not value:
                return -EINVAL
            self._h.setsockopt(0, 33, value[0])
            return 0
        if (level, option) in ((6, 1), (0xfff, 4)):    # TCP_NODELAY, SO_REUSEADDR
            if self._h is None or (option == 1 and self._type != STREAM):
                raise AssertionError('setsockopt(%d, %d) writes through the wrong or a NULL '
                                     'pcb: memory corruption on a Pico W' % (level, option))
            if option == 1:
                self._h.setsockopt(6, 1, enable)
            else:
                self._h.setsockopt(_hs.SOL_SOCKET, _hs.SO_REUSEADDR, enable)
            return 0
        return -EOPNOTSUPP

    # ---- select.poll(): common_hal_socketpool_readable and _writable
    def _readable(self):
        self._sync()
        if self._type == STREAM:
            if self._h is None:
                raise AssertionError('select.poll() of a closed or reset stream socket: '
                                     'a Pico W reads its NULL pcb')
            if self._state == LISTENING:
                # tests the slot's address, never NULL: a listening socket is
                # always readable (issue #8964), queued connection or not
                return True
            return self._state == PEER_CLOSED or self._has_input()
        self._take_datagrams()
        return self._slot is not None

    def _writable(self):
        if self._type != STREAM:
            return True
        if self._h is None or self._state == LISTENING:
            raise AssertionError('select.poll(POLLOUT) of a listening, closed or reset stream '
                                 'socket: a Pico W reads past or through its pcb')
        return self._window.room() > 0

    # ---- closing
    def _close(self):
        # socketpool_socket_close: a listener resets every connection waiting
        # in its ring (tcp_abort); a connection is closed with tcp_close,
        # which in lwIP sends a reset if input is unread, else a FIN, as the
        # host does too.  Closing twice is harmless.
        if self in _open:
            _open.remove(self)
        if self._h is None:
            return
        if self._state == LISTENING:
            for conn, raw in self._ring:
                cp.reset_host(conn)
            self._ring = []
        self._h.close()
        self._h, self._state, self._slot = None, ERR_BADF, None


def new_socket(family, kind, proto):
    # common_hal_socketpool_socket and socketpool_socket
    if family != 2:
        raise NotImplementedError('Only IPv4 sockets supported')
    sock = cp.make_socket(PicoSocket, None, kind, 2, _timeout=FOREVER, _state=NEW, _port=None,
                          _peer=None, _slot=None, _window=cp.SendWindow(TCP_SND_BUF))
    if not _register(sock):
        raise RuntimeError('Out of sockets')
    if kind == 3:
        raise AssertionError('SOCK_RAW is not re-created here')
    if kind not in (STREAM, DGRAM):
        # socketpool_socket answers false after registering: the entry stays taken
        raise RuntimeError('Out of sockets')
    sock._h = cp.host_socket(2, _hs.SOCK_STREAM if kind == STREAM else _hs.SOCK_DGRAM)
    if kind == DGRAM:
        sock._state = ACTIVE_UDP
    return sock


def getaddrinfo(host, port, family, kind, proto, flags):
    # common_hal_socketpool_getaddrinfo_raise: one IPv4 entry whatever the
    # hints; an IPv4 literal as given, anything else resolved
    ip = host if host and _ipv4_literal(host) else cp.resolve(host)
    return [(2, 1, 0, '', (ip, port))]


cp.install(cp._Module('raspberrypi', new_socket=new_socket, getaddrinfo=getaddrinfo))
