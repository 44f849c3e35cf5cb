# CircuitPython on the ESP32-S2, S3, C3 and C6 ("espressif"): importing this
# module installs socketpool, wifi, select, errno and time as that port has
# them (see circuitpython_common.py), over the host's sockets.
#
# Its sockets are ESP-IDF's lwIP BSD sockets, every one non-blocking
# underneath, each wait a loop of CircuitPython's own.  Source: adafruit/
# circuitpython cd3da4a5d8, ports/espressif/common-hal/socketpool/Socket.c
# ("Socket.c" below), SocketPool.c and esp-idf-config/sdkconfig.defaults.
# Where a comment says "lwIP", the fact is lwIP's own (sockets.c, api_lib.c,
# netdb.c, as ESP-IDF carries them), not in CircuitPython's sources; where it
# says "ESP-IDF", a default of its configuration that CircuitPython keeps.
#
# Not re-created: lwIP's UDP receive queue (6 datagrams in ESP-IDF; the host
# keeps more), its listen backlog and accept queue (the host's stand in), the
# options lwIP accepts without the host doing anything with them (SO_RCVBUF,
# TCP_KEEPIDLE and the like: refused here with ENOPROTOOPT), IPv6 scope ids.
import circuitpython_common as cp
from circuitpython_common import (
    EAGAIN, EBADF, ECONNRESET, ENOPROTOOPT, ENOTCONN, EPIPE, ETIMEDOUT, FOREVER)
import _hostsocket as _hs
import select as _hselect
import struct

STREAM, DGRAM = 1, 2
# sdkconfig.defaults: CONFIG_LWIP_MAX_SOCKETS=8.  What counts is lwIP's
# sockets: the program's, the accepted ones, and those a timed accept() leaks.
MAX_SOCKETS = 8
# ESP-IDF: CONFIG_LWIP_TCP_SND_BUF_DEFAULT, 5,760 bytes (4 segments of 1,440).
TCP_SND_BUF = 5760
# RUN_BACKGROUND_TASKS, run in every round of a waiting loop between the
# timeout check and the lwIP call: the workflow, Wi-Fi.  Here it waits up to
# this long for the socket underneath, longer than on a board, so that what
# the last round of a timed wait does is seen in tests.
BACKGROUND_MS = 5
_H_IN, _H_OUT, _H_ERR, _H_HUP = _hselect.POLLIN, _hselect.POLLOUT, _hselect.POLLERR, _hselect.POLLHUP
_lwip = []                    # the host sockets that stand for lwIP's sockets


class EspSocket(cp.Socket):

    def _closed(self):
        # common_hal_socketpool_socket_get_closed: num < 0
        return self._h is None

    def _connected(self):
        # self->connected: set by connect() and accept(), cleared by close(),
        # by a non-blocking read at the end of the stream, and by a send that
        # fails with ECONNRESET or ENOTCONN
        return self._conn

    def _settimeout(self, ms):
        self._timeout = ms

    def _background(self, events):
        # RUN_BACKGROUND_TASKS: a non-blocking call's round has no wait here
        if self._timeout != 0 and self._h is not None:
            cp.host_events(self._h, events, BACKGROUND_MS)

    def _give_up(self, start, what):
        if self._timeout == FOREVER and cp.since(start) > cp.FOREVER_HERE_MS:
            raise cp.waited_for_ever(what)

    # ---- listening and accepting
    def _listen(self, backlog):
        # common_hal_socketpool_socket_listen's answer is dropped by the
        # binding: listen() never raises.  lwIP takes the backlog as 0-255.
        if self._h is not None:
            try:
                self._h.listen(max(0, min(backlog, 255)))
            except OSError:
                pass

    def _lwip_accept(self):
        """lwip_accept on the non-blocking socket: (connection, address), or
        None for -1."""
        if self._h is None:
            return None
        try:
            conn, raw = self._h.accept()
        except OSError:
            return None
        if len(_lwip) >= MAX_SOCKETS:
            # lwIP: the connection is taken from the queue before a socket is
            # looked for; with none, it is deleted (a reset if it sent
            # anything) and accept says ENFILE.
            conn.close()
            return None
        conn.settimeout(0)
        _lwip.append(conn)
        return conn, raw

    def _accept(self):
        # socketpool_socket_accept.  Each round checks the deadline BEFORE it
        # accepts: a connection taken in the round that finds the deadline
        # past is not returned, and its lwIP socket is never closed.  An
        # error is -1 like "nothing yet", so a non-blocking accept says
        # EAGAIN for both, and a blocking one waits on.
        start, timed_out, got = cp.ticks(), False, None
        while got is None and not timed_out:
            if self._timeout not in (FOREVER, 0):
                timed_out = cp.since(start) >= self._timeout
            self._background(_H_IN)
            got = self._lwip_accept()
            if got is None and self._timeout == 0:
                raise OSError(EAGAIN)
            self._give_up(start, 'accept() without a timeout')
        if timed_out:
            raise OSError(ETIMEDOUT)
        conn, raw = got
        # common_hal_socketpool_socket_accept: the new object comes zeroed
        # from the heap and only num, pool, connected and type are set, so
        # its timeout is 0, non-blocking, whatever the listener's, and its
        # family 0.
        address = cp.board_address(raw)
        return cp.make_socket(EspSocket, conn, self._type, 0, _timeout=0, _conn=True,
                              _peer=address, _eof=False, _reset=False,
                              _window=cp.SendWindow(TCP_SND_BUF)), address

    # ---- binding and connecting
    def _resolve(self, host):
        # resolve_host_or_throw: lwip_getaddrinfo with the socket's family
        return cp.resolve(host, 10 if self._family == 10 else 2)

    def _bind(self, host, port):
        # common_hal_socketpool_socket_bind: "" is any address, "<broadcast>"
        # 255.255.255.255 (IPv4), anything else resolved; errno if lwip_bind fails
        if not host:
            ip = '::' if self._family == 10 else '0.0.0.0'
        elif host == '<broadcast>' and self._family != 10:
            ip = '255.255.255.255'
        else:
            ip = self._resolve(host)
        if self._h is None:
            return EBADF
        try:
            self._h.bind(cp.host_address(ip, port))
        except OSError as error:
            return cp.host_errno(error)
        return 0

    def _connect(self, host, port):
        # common_hal_socketpool_socket_connect: lwip_connect, then select()
        # for writability in 100 ms steps while the timeout lasts; then
        # ETIMEDOUT, at once for a non-blocking socket, the connect going on
        # (and the socket never counted as connected)
        ip = self._resolve(host)
        if self._h is None:
            raise OSError(EBADF)
        try:
            self._h.connect(cp.host_address(ip, port))
            self._conn, self._peer = True, (ip, port)
            return
        except OSError as error:
            if error.args[0] != cp.H_EINPROGRESS:
                raise OSError(cp.host_errno(error))
        start, left = cp.ticks(), self._timeout
        while left > 0:
            events = cp.host_events(self._h, _H_OUT, 100)
            if not events:
                left = max(0, left - 100)
                self._give_up(start, 'connect() without a timeout')
                continue
            if events & _H_ERR:
                # SO_ERROR: lwIP sees a refused connection as a reset, ECONNRESET
                raise OSError(ECONNRESET)
            self._conn, self._peer = True, (ip, port)
            return
        raise OSError(ETIMEDOUT)

    # ---- receiving
    def _lwip_recv(self, view):
        """lwip_recv on the non-blocking socket: (count, errno)."""
        if self._h is None:
            return -1, EBADF
        if self._reset:
            # lwIP: once the reset has been reported, the netconn has no
            # pending error and an empty mailbox: ERR_WOULDBLOCK for ever
            return -1, EAGAIN
        if self._eof:
            # lwIP: asked again after the end of the stream, ERR_CONN
            return -1, ENOTCONN
        try:
            data = self._h.recv(len(view))
        except OSError as error:
            number = cp.host_errno(error)
            self._reset = number == ECONNRESET
            return -1, number
        if not data and self._type == STREAM:
            self._eof = True
        view[:len(data)] = data
        return len(data), 0

    def _recv_into(self, view):
        # socketpool_socket_recv_into.  Non-blocking: 0 or ENOTCONN is the end
        # of the stream, raised as ENOTCONN; anything else EAGAIN.  Timed:
        # the deadline is checked BEFORE each read, so what the last round
        # reads is lost to ETIMEDOUT.  Blocking: every error waits on.
        start, timed_out, received = cp.ticks(), False, -1
        while received == -1 and not timed_out:
            if self._timeout not in (FOREVER, 0):
                timed_out = cp.since(start) >= self._timeout
            self._background(_H_IN)
            received, number = self._lwip_recv(view)
            if received < 1 and self._timeout == 0:
                if received == 0 or number == ENOTCONN:
                    self._conn = False
                    raise OSError(ENOTCONN)
                raise OSError(EAGAIN)
            self._give_up(start, 'recv_into() without a timeout (a reset connection '
                                 'reads as "nothing yet" here)')
        if timed_out:
            raise OSError(ETIMEDOUT)
        return received

    def _recvfrom_into(self, view):
        # common_hal_socketpool_socket_recvfrom_into: the same loop over
        # lwip_recvfrom, with the same lost last round
        start, timed_out, received = cp.ticks(), False, -1
        while received == -1 and not timed_out:
            if self._timeout not in (FOREVER, 0):
                timed_out = cp.since(start) >= self._timeout
            self._background(_H_IN)
            if self._type == STREAM:
                received, number = self._lwip_recv(view)
                source = self._peer
            else:
                try:
                    data, raw = self._h.recvfrom(len(view))  # AttributeError: closed
                    view[:len(data)] = data
                    received, source = len(data), cp.board_address(raw)
                except (OSError, AttributeError):
                    received = -1
            if received == -1 and self._timeout == 0:
                raise OSError(EAGAIN)
            self._give_up(start, 'recvfrom_into() without a timeout')
        if timed_out:
            raise OSError(ETIMEDOUT)
        return received, source

    # ---- sending
    def _send(self, view):
        # socketpool_socket_send: one lwip_send on the non-blocking socket,
        # whatever the timeout: a full send buffer is EAGAIN at once
        if not len(view):
            return 0
        try:
            if self._type == STREAM:
                sent = self._window.push(self._h, view[:max(0, self._window.room())])
            else:
                sent = self._h.send(view)
        except OSError as error:
            number = cp.host_errno(error)
            if number == EPIPE:
                number = ENOTCONN        # lwIP: a netconn without its pcb, ERR_CONN
            if number in (ECONNRESET, ENOTCONN):
                self._conn = False
            raise OSError(number)
        if not sent:
            raise OSError(EAGAIN)
        return sent

    def _sendto(self, view, host, port):
        # common_hal_socketpool_socket_sendto: any failure is BrokenPipeError;
        # a stream socket sends as send() does (lwIP ignores the address)
        ip = self._resolve(host)
        try:
            if self._type == STREAM:
                return self._send(view)
            return self._h.sendto(view, cp.host_address(ip, port))
        except (OSError, AttributeError):
            raise BrokenPipeError(EPIPE)

    # ---- options
    def _setsockopt(self, level, option, value):
        # common_hal_socketpool_socket_setsockopt: lwip_setsockopt with lwIP's
        # numbers, -errno on failure
        if self._h is None:
            return -EBADF
        host = {(0xfff, 4): (_hs.SOL_SOCKET, _hs.SO_REUSEADDR),
                (0xfff, 8): (_hs.SOL_SOCKET, _hs.SO_KEEPALIVE),
                (0xfff, 0x20): (_hs.SOL_SOCKET, _hs.SO_BROADCAST),
                (6, 1): (6, 1),                   # TCP_NODELAY
                (0, 5): (0, 33)}.get((level, option))   # IP_MULTICAST_TTL
        if level == 0xfff and option == 0x80:     # SO_LINGER: two ints, as the host's
            if len(value) < 8:
                return -22
            self._h.setsockopt(_hs.SOL_SOCKET, _hs.SO_LINGER, value[:8])
            return 0
        if host is None or (level == 6 and self._type != STREAM):
            return -ENOPROTOOPT
        if len(value) < 4:
            return -22                   # lwIP checks the length: EINVAL
        self._h.setsockopt(host[0], host[1], struct.unpack('<i', value[:4])[0])
        return 0

    # ---- select.poll(): common_hal_socketpool_readable and _writable, each
    # a select() with no wait, the socket in the error set too: an error
    # counts as ready, and so does a closed socket (select fails on -1)
    def _readable(self):
        if self._h is None or self._reset:
            return True
        return bool(cp.host_events(self._h, _H_IN) & (_H_IN | _H_ERR | _H_HUP))

    def _writable(self):
        if self._h is None:
            return True
        events = cp.host_events(self._h, _H_OUT)
        if events & _H_ERR:
            return True
        if self._type == STREAM:
            # lwIP: a listening or unconnected socket never has a send event
            return self._conn and self._window.room() > 0 and bool(events & _H_OUT)
        return True

    # ---- closing
    def _close(self):
        # socketpool_socket_close: lwip_shutdown(SHUT_RDWR), lwip_close; lwIP
        # resets a connection whose input is unread, as the host does
        self._conn = False
        if self._h is None:
            return
        if self._h in _lwip:
            _lwip.remove(self._h)
        self._h.close()
        self._h = None


def new_socket(family, kind, proto):
    # common_hal_socketpool_socket and _socketpool_socket
    if family not in (2, 10):
        raise NotImplementedError('Unsupported socket type')
    if kind not in (STREAM, DGRAM):
        raise AssertionError('SOCK_RAW is not re-created here')
    if len(_lwip) >= MAX_SOCKETS:
        raise RuntimeError('Out of sockets')     # lwip_socket failed
    host = cp.host_socket(family, _hs.SOCK_STREAM if kind == STREAM else _hs.SOCK_DGRAM)
    _lwip.append(host)
    return cp.make_socket(EspSocket, host, kind, family, _timeout=FOREVER, _conn=False,
                          _peer=None, _eof=False, _reset=False,
                          _window=cp.SendWindow(TCP_SND_BUF))


def getaddrinfo(host, port, family, kind, proto, flags):
    # common_hal_socketpool_getaddrinfo_raise: lwip_getaddrinfo with the
    # hints; lwIP (netdb.c) gives one entry, with the hints' socket type and
    # protocol, the host name as canonname, and refuses a port outside 0-65535
    # or another family (all as gaierror here, raise_gaierror_noname)
    if family not in (0, 2, 10) or not 0 <= port <= 0xFFFF:
        raise cp.gaierror(-2, 'Name or service not known')
    try:
        ip = cp.resolve(host, family or 2)
    except OSError:
        if family:
            raise
        ip = cp.resolve(host, 10)
    if ':' in ip:
        return [(10, kind, proto, host, (ip, port, 0, 0))]
    return [(2, kind, proto, host, (ip, port))]


cp.install(cp._Module('espressif', new_socket=new_socket, getaddrinfo=getaddrinfo))
