"""Ending a benchmark server: each runs in a process group of its own
(start_new_session), with whatever children it forked."""

import os
import signal
import subprocess


def end_process_group(process):
    """SIGTERM to the group, then SIGKILL to whatever of it is left (a
    forking server's children may outlive it); waits for the process."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            process.wait(2 if sig == signal.SIGTERM else 10)
        except subprocess.TimeoutExpired:
            pass
