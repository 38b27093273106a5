"""Run one function in a child process, so that running out of memory there ends the child only.

The centralized reference of a long distributed run is solved last; on T118D10 its
compilation once grew past this machine's memory and the kernel killed the whole run, hours
of ADMM with it. :func:`run_in_child` runs such a solve in a spawned process under an
address-space limit (``RLIMIT_AS``): an allocation beyond it raises ``MemoryError`` there,
and a child killed by a signal (the kernel's out-of-memory killer sends SIGKILL) is noticed
too. Either becomes a :class:`ChildFailed` with the reason; the caller keeps its own results.
Any other exception of the function is raised again in the caller.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import resource
import signal
from typing import Any, Callable


class ChildFailed(RuntimeError):
    """The child ran out of memory, was killed, or exited without a result (the reason says which)."""


def physical_memory_bytes() -> int:
    """This machine's physical memory."""
    return int(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


def _child_main(conn, fn: Callable, args: tuple, kwargs: dict, memory_limit_bytes: int | None) -> None:
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
    conn.send(message)
    conn.close()


def run_in_child(fn: Callable, *args: Any, memory_limit_bytes: int | None = None, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)`` in a spawned process; its return value (pickled back).

    ``fn`` must be importable by name (a module-level function), its arguments and result
    picklable. ``memory_limit_bytes``: the child's address-space limit (None: no limit beyond
    the caller's). Raises :class:`ChildFailed` when the child runs out of memory, is killed or
    exits without a result; re-raises any other exception of ``fn``."""
    ctx = multiprocessing.get_context("spawn")
    receiver, sender = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child_main, args=(sender, fn, args, kwargs, memory_limit_bytes),
                       name=f"child:{getattr(fn, '__name__', 'fn')}")
    proc.start()
    sender.close()
    try:
        try:
            kind, payload = receiver.recv()
        except EOFError:
            kind, payload = None, None
        proc.join()
    finally:
        if proc.is_alive():
            proc.terminate()
            proc.join()
        receiver.close()
    if kind == "ok":
        return payload
    if kind == "error":
        raise payload
    limit = "" if memory_limit_bytes is None else f" (limit {memory_limit_bytes / 2**30:.1f} GiB)"
    if kind == "memory":
        raise ChildFailed(f"ran out of memory{limit}: {payload}")
    code = proc.exitcode
    if code is not None and code < 0:
        name = signal.Signals(-code).name
        hint = ", as the kernel's out-of-memory killer does" if -code == signal.SIGKILL else ""
        raise ChildFailed(f"was killed by {name}{hint}")
    raise ChildFailed(f"exited with code {code} without a result")
