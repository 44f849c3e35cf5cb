"""An XML-RPC service on socketse: add, pow and echo.

    python3 examples/xmlrpc_server.py [--host HOST] [--port PORT] [--quiet]

Serves until interrupted (Ctrl-C).  Binds 127.0.0.1:8770 by default and
prints the URL it serves on; each call has its own thread.  Call it from
Python with the standard library's client:

    >>> from xmlrpc.client import ServerProxy
    >>> service = ServerProxy("http://127.0.0.1:8770/")
    >>> service.add(2, 3), service.pow(2, 10), service.echo("hi")
    (5, 1024, 'hi')
    >>> service.system.listMethods()

A call that fails comes back as an xmlrpc.client.Fault.  Requests are logged
to stderr unless --quiet.

xmlrpc.server's SimpleXMLRPCRequestHandler expects its server to be a
SimpleXMLRPCDispatcher too; XMLRPCServer below is one, on a socketse server.
CPython and PyPy, with socketse.py beside it or on the path (from the
repository root: PYTHONPATH=. python3 examples/xmlrpc_server.py).
"""

import sys
from xmlrpc.server import SimpleXMLRPCDispatcher, SimpleXMLRPCRequestHandler

import socketse


def add(a, b):
    """add(a, b): a + b, for numbers (or strings, or lists)."""
    return a + b


def power(base, exponent):
    """pow(base, exponent): base to the power exponent, |exponent| <= 1000
    (an integer result beyond XML-RPC's 32 bits comes back as a Fault)."""
    if abs(exponent) > 1000:  # 10 ** 10 ** 9 would keep a thread busy for ever
        raise ValueError("exponent too large: at most 1000")
    return base ** exponent


def echo(value):
    """echo(value): value, unchanged."""
    return value


class XMLRPCServer(socketse.ThreadingTCPServer, SimpleXMLRPCDispatcher):
    allow_reuse_address = True
    daemon_threads = True
    _send_traceback_header = False  # read by the handler when a call fails

    def __init__(self, address, log_requests=True):
        self.logRequests = log_requests  # read by the handler
        SimpleXMLRPCDispatcher.__init__(self, allow_none=True)
        socketse.ThreadingTCPServer.__init__(self, address, SimpleXMLRPCRequestHandler)


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
    address = (option("--host", "127.0.0.1"), int(option("--port", "8770")))
    with XMLRPCServer(address, log_requests="--quiet" not in sys.argv) as server:
        server.register_function(add)
        server.register_function(power, "pow")
        server.register_function(echo)
        server.register_introspection_functions()
        server.register_multicall_functions()
        host, port = server.server_address[:2]
        try:  # from here on, so that Ctrl-C is never a traceback
            print("serving on http://%s:%s/" % ("[%s]" % host if ":" in host else host, port))
            server.serve_forever()
        except KeyboardInterrupt:
            print("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
