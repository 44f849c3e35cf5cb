"""The public API matches the standard library's socketserver (as of 3.13)."""

import inspect
import os
import socket
import socketserver

import pytest

import socketse

# Added to the stdlib in 3.12; an older stdlib here lacks them.
FORKING_UNIX = {
    "ForkingUnixStreamServer": "UnixStreamServer",
    "ForkingUnixDatagramServer": "UnixDatagramServer",
}


def expected_all():
    """CPython 3.13's socketserver.__all__ on this platform."""
    names = set(socketserver.__all__)
    if hasattr(os, "fork") and hasattr(socket, "AF_UNIX"):
        names.update(FORKING_UNIX)
    return names


def reference(name):
    """The stdlib's object for a name of 3.13's __all__."""
    if hasattr(socketserver, name):
        return getattr(socketserver, name)
    base = getattr(socketserver, FORKING_UNIX[name])
    return type(name, (socketserver.ForkingMixIn, base), {})


def test_all_matches_the_stdlib():
    assert len(socketse.__all__) == len(set(socketse.__all__)), "duplicates in __all__"
    assert set(socketse.__all__) == expected_all()


def test_every_name_in_all_exists():
    missing = [name for name in socketse.__all__ if not hasattr(socketse, name)]
    assert missing == []


def test_all_lists_every_public_class_and_function():
    defined = {
        name
        for name, obj in vars(socketse).items()
        if not name.startswith("_")
        and (inspect.isclass(obj) or inspect.isfunction(obj))
        and getattr(obj, "__module__", None) == socketse.__name__
    }
    assert defined <= set(socketse.__all__)


def public_members(cls):
    """Names of cls that a user may call or override, with the stdlib's
    object for each."""
    for name in dir(cls):
        if name.startswith("_") and name not in ("__init__", "__enter__", "__exit__"):
            continue
        yield name, getattr(cls, name)


def parameters(function):
    return [(p.name, p.kind, p.default) for p in inspect.signature(function).parameters.values()]


CLASS_NAMES = sorted(name for name in expected_all() if inspect.isclass(reference(name)))


# The documented differences.  The mix-ins wait for their handlers in the
# server's own server_close(), through a hook, instead of overriding it with
# a super() call: MicroPython's super() does not chain through mix-ins.
NOT_IN_SOCKETSE = {("ThreadingMixIn", "server_close"), ("ForkingMixIn", "server_close")}


@pytest.mark.parametrize("name", CLASS_NAMES)
def test_methods_have_the_stdlib_signatures(name):
    ours = getattr(socketse, name)
    differences = []
    for member, theirs in public_members(reference(name)):
        if not inspect.isfunction(theirs) or (name, member) in NOT_IN_SOCKETSE:
            continue  # attributes, object's own slot wrappers, documented differences
        mine = getattr(ours, member, None)
        if mine is None:
            differences.append("%s.%s is missing" % (name, member))
        elif parameters(mine) != parameters(theirs):
            differences.append("%s.%s%s, stdlib %s%s" % (
                name, member, inspect.signature(mine), member, inspect.signature(theirs)))
    assert differences == []


@pytest.mark.parametrize("name", CLASS_NAMES)
def test_class_attributes_have_the_stdlib_defaults(name):
    ours = getattr(socketse, name)
    differences = []
    for member, theirs in public_members(reference(name)):
        if callable(theirs) or member == "request_queue_size":
            continue
        if not hasattr(ours, member):
            differences.append("%s.%s is missing" % (name, member))
        elif getattr(ours, member) != theirs:
            differences.append("%s.%s = %r, stdlib %r" % (name, member, getattr(ours, member), theirs))
    assert differences == []


@pytest.mark.parametrize("name", ["TCPServer", "UDPServer", "ThreadingTCPServer"])
def test_request_queue_size_is_somaxconn(name):
    # socketse-only: the stdlib's is 5.
    assert getattr(socketse, name).request_queue_size == socket.SOMAXCONN


def test_class_hierarchy_matches_the_stdlib():
    for name in CLASS_NAMES:
        ours = getattr(socketse, name)
        bases = [base.__name__ for base in reference(name).__mro__ if base is not object]
        for base in bases:
            assert issubclass(ours, getattr(socketse, base)), (name, base)
