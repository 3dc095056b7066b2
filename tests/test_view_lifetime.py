"""A failed call must not leave a cffi view of the caller's buffer in its traceback.

``ffi.from_buffer`` on a ``memoryview`` takes an export of it. If the
exception of a failed call is kept in a reference cycle (asyncio keeps
exceptions that way) its traceback keeps the frames' locals, the view among
them; when the collector then frees the cycle it clears the memoryview before
the view, cannot drop the export, and the interpreter crashes. Each case runs
in its own interpreter under the wrapper: a crash is a negative exit status.
"""

from __future__ import annotations

import subprocess
import sys
from typing import Callable

import pytest

# Each case: code that must raise one of the documented exceptions; names in
# scope: cando, socket, mv (a writable 4096-byte memoryview), srv, cli, dest.
CASES = {
    "recv_into_would_block": "srv.recv_into(mv, 0, socket.MSG_DONTWAIT)",
    "recv_into_bad_flags": "srv.recv_into(mv, 0, 'x')",
    "recv_into_bad_nbytes": "srv.recv_into(mv, 5000)",
    "recvfrom_into_would_block": "srv.recvfrom_into(mv, 0, socket.MSG_DONTWAIT)",
    "client_recvfrom_into_would_block": "cli.recvfrom_into(mv, 0, socket.MSG_DONTWAIT)",
    "send_empty_view": "cli.send(mv[:0])",
    "send_closed": "cli.close(); cli.send(mv)",
    "send_bad_flags": "cli.send(mv, 'x')",
    "sendto_too_big": "cli.sendto(memoryview(bytearray(1 << 17)), dest)",
    "recv_many_into_would_block": "srv.recv_many_into(mv, 64, socket.MSG_DONTWAIT)",
    "recv_many_into_bad_flags": "srv.recv_many_into(mv, 64, 'x')",
    "send_many_empty_item": "cli.send_many([mv, mv[:0]])",
    "send_many_closed": "fd = cli.fileno(); cli.close(); cando._batch.send_many(fd, [mv], dest)",
}

SCRIPT = """
import gc, socket, sys
import cando, cando._batch
srv = cando.Server(port=-1)
dest = (2, srv.port)
for _ in range(20):
    cli = cando.Client(*dest)
    mv = memoryview(bytearray(4096))
    class Holder:
        pass
    holder = Holder()
    try:
        exec(sys.argv[1])
    except (OSError, TypeError, ValueError) as exc:
        holder.exc, exc.holder = exc, holder  # the cycle that keeps the traceback
    else:
        raise SystemExit("no exception: " + sys.argv[1])
    cli.close()
    del holder, mv
    gc.collect()
print("collected")
"""


@pytest.mark.parametrize("case", sorted(CASES))
def test_failed_call_keeps_no_view(
        case: str, run_wrapped: Callable[..., subprocess.CompletedProcess[str]]) -> None:
    proc = run_wrapped([sys.executable, "-X", "faulthandler", "-c", SCRIPT, CASES[case]])
    assert proc.stdout.strip() == "collected"
