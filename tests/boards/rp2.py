# rp2 (Raspberry Pi Pico W) board profile: importing this module replaces
# sys.modules['_thread'] with a wrapper of the real _thread that allows only ONE
# thread besides the main one, as on the RP2040/RP2350 where a thread is core1.
# Import it BEFORE anything else imports _thread.
#
# Mirrors (MicroPython master 1c3c201, 2026-08):
# - ports/rp2/mpthreadport.c mp_thread_create: if core1_entry != NULL it raises
#   OSError("core1 in use") -- a plain message, no errno number.
# - core1_entry is cleared by core1_entry_wrapper only after py/modthread.c
#   thread_entry has returned, i.e. after the Python function returned AND any
#   "Unhandled exception" report was printed.  A thread therefore ends
#   asynchronously: code that restarts a thread as soon as the previous one has
#   signalled "done" can hit "core1 in use".  Here that window is exaggerated to
#   GRACE_MS after the function returns (on hardware it is the thread_entry epilogue,
#   longer while a traceback is printed to a slow console), so the race shows up.
# - mp_thread_get_id: get_core_num() + 1, so get_ident() is 1 on the main thread
#   and 2 on the other; mp_thread_create returns 2, which start_new_thread returns.
# - ports/rp2/mpconfigport.h: MICROPY_PY_THREAD_GIL 0 (no GIL, like the lwip binary).
import sys
import time
import _thread as _rt

GRACE_MS = 50
_lock = _rt.allocate_lock()
_core1 = [False, None]          # [in use, ticks_ms when its function returned]
_main = _rt.get_ident()


class _Module:
    def __init__(self, name, **attrs):
        self.__name__ = name
        for k in attrs:
            setattr(self, k, attrs[k])


def _finished():
    with _lock:
        _core1[0] = False
        _core1[1] = time.ticks_ms()


def start_new_thread(func, args, kwargs=None):
    # py/modthread.c mod_thread_start_new_thread: args a tuple or list, kwargs a dict
    if not isinstance(args, (tuple, list)):
        raise TypeError("object '%s' isn't a tuple or list" % type(args).__name__)
    if kwargs is not None and type(kwargs) is not dict:
        raise TypeError('expecting a dict for keyword args')
    with _lock:
        busy = _core1[0] or (_core1[1] is not None and
                             time.ticks_diff(time.ticks_ms(), _core1[1]) < GRACE_MS)
        if busy:
            raise OSError('core1 in use')
        _core1[0] = True

    def entry():
        # py/modthread.c thread_entry: SystemExit is swallowed, anything else is
        # reported; core1 becomes free only after that.
        try:
            func(*args, **(kwargs or {}))
        except SystemExit:
            pass
        except BaseException as e:
            sys.stderr.write('Unhandled exception in thread started by %r\n' % (func,))
            sys.print_exception(e, sys.stderr)
        finally:
            _finished()

    try:
        _rt.start_new_thread(entry, ())
    except BaseException:
        with _lock:
            _core1[0] = False
        raise
    return 2


def get_ident():
    return 1 if _rt.get_ident() == _main else 2


_thread = _Module('_thread', start_new_thread=start_new_thread, get_ident=get_ident,
                  allocate_lock=_rt.allocate_lock, LockType=_rt.LockType,
                  exit=_rt.exit, stack_size=_rt.stack_size)
sys.modules['_thread'] = _thread
