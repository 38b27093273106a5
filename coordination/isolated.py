"""Run one function in a child process, so that running out of memory there ends the child only.

The centralized reference of a long distributed run is solved last; on T118D10 its
compilation once grew past this machine's memory and the kernel killed the whole run, hours
of ADMM with it. :func:`run_in_child` runs such a solve in a fresh Python process under an
address-space limit (``RLIMIT_AS``): an allocation beyond it raises ``MemoryError`` there,
and a child killed by a signal (the kernel's out-of-memory killer sends SIGKILL) is noticed
too. Either becomes a :class:`ChildFailed` with the reason; the caller keeps its own results.
Any other exception of the function is raised again in the caller.

The child does not outlive its caller: on Linux it asks the kernel for SIGKILL when the
caller dies (``PR_SET_PDEATHSIG``; strictly, when the thread that started it ends, which
waits for the child in :func:`run_in_child`), so a run stopped with ``kill`` (SIGTERM, which skips the
caller's clean-up) does not leave a centralized solve running on its own; elsewhere a caller
that ends without its clean-up can leave the child to finish its solve.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import pickle
import resource
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

#: The child's program: read (sys.path, payload) from stdin, run it, write the reply to the
#: original stdout; the child's own prints go to stderr.
_CHILD = ("import sys; sys.path.insert(0, {root!r}); from coordination.isolated import _serve; "
          "_serve({parent})")
#: prctl option: the signal this process gets when its parent dies (linux/prctl.h).
_PR_SET_PDEATHSIG = 1


class ChildFailed(RuntimeError):
    """The child ran out of memory, was killed, or exited without a result (the reason says which)."""


def physical_memory_bytes() -> int:
    """This machine's physical memory."""
    return int(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


def _die_with_parent(parent_pid: int) -> None:
    """Ask the kernel (Linux) for SIGKILL when the parent process dies; exit now if it already has."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    except (OSError, AttributeError):  # no libc or no prctl: the child may outlive a killed caller
        return
    if os.getppid() != parent_pid:  # the parent died before the request: nobody waits for the result
        os._exit(1)


def _serve(parent_pid: int) -> None:
    """The child's side of :func:`run_in_child`; ``parent_pid``: the caller, whose death ends it."""
    _die_with_parent(parent_pid)
    reply = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # print() in the child goes to stderr, not into the reply
    path, payload = pickle.load(sys.stdin.buffer)
    sys.path[:] = path
    fn, args, kwargs, memory_limit_bytes = pickle.loads(payload)
    if memory_limit_bytes is not None:
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        soft = memory_limit_bytes if hard == resource.RLIM_INFINITY else min(memory_limit_bytes, hard)
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
    try:
        message = ("ok", fn(*args, **kwargs))
    except MemoryError as exc:
        message = ("memory", str(exc) or "MemoryError")
    except BaseException as exc:  # noqa: BLE001 - every failure goes back to the caller
        try:
            pickle.loads(pickle.dumps(exc))
            message = ("error", exc)
        except Exception:  # noqa: BLE001 - an exception that does not pickle goes back as text
            message = ("error", RuntimeError(f"{type(exc).__name__}: {exc}"))
    pickle.dump(message, reply)
    reply.close()


def run_in_child(fn: Callable, *args: Any, memory_limit_bytes: int | None = None, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)`` in a fresh Python process; its return value (pickled back).

    ``fn`` must be importable by name (a module-level function), its arguments and result
    picklable; the child gets this process's ``sys.path``, and the caller's script is not
    imported again (no ``if __name__ == "__main__"`` guard is needed). ``memory_limit_bytes``:
    the child's address-space limit (None: no limit beyond the caller's). Raises
    :class:`ChildFailed` when the child runs out of memory, is killed or exits without a
    result; re-raises any other exception of ``fn``."""
    payload = pickle.dumps((fn, args, kwargs, memory_limit_bytes))
    root = str(Path(__file__).resolve().parent.parent)
    proc = subprocess.Popen([sys.executable, "-c", _CHILD.format(root=root, parent=os.getpid())], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE)
    try:
        out, _ = proc.communicate(pickle.dumps((list(sys.path), payload)))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    try:
        kind, value = pickle.loads(out) if out else (None, None)
    except Exception:  # noqa: BLE001 - a reply cut short by the child's death
        kind, value = None, None
    if kind == "ok":
        return value
    if kind == "error":
        raise value
    limit = "" if memory_limit_bytes is None else f" (limit {memory_limit_bytes / 2**30:.1f} GiB)"
    if kind == "memory":
        raise ChildFailed(f"ran out of memory{limit}: {value}")
    code = proc.returncode
    if code is not None and code < 0:
        name = signal.Signals(-code).name
        hint = ", as the kernel's out-of-memory killer does" if -code == signal.SIGKILL else ""
        raise ChildFailed(f"was killed by {name}{hint}")
    raise ChildFailed(f"exited with code {code} without a result")
