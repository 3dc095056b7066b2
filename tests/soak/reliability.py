#!/usr/bin/env python3
"""Builds and runners for the reliability programs (issue 6), shared by the tests and the CLI.

Flavours (each a meson build of libcando *and* vsock_wrapper, plus the C programs
compiled the same way), under ``$CANDO_RELIABILITY_BUILD`` (default
``<repo>/build/sanitizers/``)::

    native      plain -O2 build (also what valgrind runs)
    asan-gcc    gcc   -fsanitize=address,undefined; libasan.so first in LD_PRELOAD
    asan-clang  clang -fsanitize=address,undefined -shared-libasan;
                libclang_rt.asan-x86_64.so first in LD_PRELOAD
    tsan        gcc   -fsanitize=thread; libtsan.so first in LD_PRELOAD
    valgrind    the native binaries under memcheck

CLI (full-size figures; see docs/reliability.md)::

    python3 tests/soak/reliability.py soak [--cycles 100000] [--datagrams 1000000]
    python3 tests/soak/reliability.py load [--clients 16] [--count 20000] [--full block|drop]
    python3 tests/soak/reliability.py kernel-load [--clients 4] [--count 300]
    python3 tests/soak/reliability.py run FLAVOUR PROGRAM [ARG ...]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import fcntl
import functools
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Iterator, Sequence

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
TESTS = REPO / "tests"
BUILD = Path(os.environ.get("CANDO_RELIABILITY_BUILD", REPO / "build" / "sanitizers"))
CFLAGS = ["-std=gnu11", "-Wall", "-Wextra", "-Werror", "-g"]

PROGRAMS: dict[str, Path] = {
    "bad_input": TESTS / "c" / "bad_input.c",
    "threads": TESTS / "c" / "threads.c",
    "load": TESTS / "c" / "load.c",
    "faults": TESTS / "c" / "faults.c",
    "soak": HERE / "soak.c",
    "lib_kernel": TESTS / "kernel" / "lib_kernel.c",
    "vsock_conformance": TESTS / "conformance" / "vsock_conformance.c",
}
NO_LIBCANDO = {"vsock_conformance"}

VALGRIND = [
    "valgrind", "-q", "--error-exitcode=99", "--leak-check=full",
    "--errors-for-leak-kinds=definite,indirect", "--track-fds=yes", "--trace-children=yes",
    "--child-silent-after-fork=no", "--fair-sched=yes", f"--suppressions={HERE / 'valgrind.supp'}",
]
SANITIZER_REPORT = re.compile(
    r"ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|WARNING: ThreadSanitizer|"
    r"ThreadSanitizer: |ERROR SUMMARY: [1-9]|definitely lost: [1-9]|indirectly lost: [1-9]"
)
FD_SUMMARY = re.compile(r"==(\d+)== FILE DESCRIPTORS: (\d+) open \((\d+) std\) at exit")


class BuildError(RuntimeError):
    pass


@dataclasses.dataclass(frozen=True)
class Flavour:
    name: str
    cc: str
    sanitize: str | None  # meson b_sanitize
    cflags: tuple[str, ...]
    runtime: str | None  # what must come first in LD_PRELOAD

    @property
    def builddir(self) -> Path:
        return BUILD / self.name

    @property
    def wrapper(self) -> Path:
        return self.builddir / "wrapper" / "libvsock_wrapper.so"

    @property
    def libdir(self) -> Path:
        return self.builddir / "lib"

    def preload(self) -> str:
        return " ".join(p for p in (self.runtime, str(self.wrapper)) if p)

    def env(self) -> dict[str, str]:
        env = {"LD_PRELOAD": self.preload()}
        if self.sanitize:
            env.update(
                ASAN_OPTIONS="detect_leaks=1:halt_on_error=1:abort_on_error=0:exitcode=98:"
                "detect_stack_use_after_return=1:strict_string_checks=1",
                UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:exitcode=97",
                TSAN_OPTIONS="halt_on_error=1:exitcode=96:second_deadlock_stack=1",
            )
        return env


def _runtime(cc: str, name: str) -> str:
    out = subprocess.run([cc, f"-print-file-name={name}"], capture_output=True, text=True,
                         check=False).stdout.strip()
    if not out or not os.path.isabs(out) or not os.path.exists(out):
        raise BuildError(f"{cc} has no {name} ({out!r})")
    return os.path.realpath(out)


def flavour(name: str) -> Flavour:
    """The flavour's definition (runtimes are looked up, nothing is built)."""
    san_c = ("-fsanitize=address,undefined", "-fno-sanitize-recover=all",
             "-fno-omit-frame-pointer")
    if name in ("native", "valgrind"):
        return Flavour("native", "gcc", None, ("-O2",), None)
    if name == "asan-gcc":
        return Flavour(name, "gcc", "address,undefined", ("-O1", *san_c),
                       _runtime("gcc", "libasan.so"))
    if name == "asan-clang":
        return Flavour(name, "clang", "address,undefined", ("-O1", "-shared-libasan", *san_c),
                       _runtime("clang", "libclang_rt.asan-x86_64.so"))
    if name == "tsan":
        return Flavour(name, "gcc", "thread", ("-O1", "-fsanitize=thread"),
                       _runtime("gcc", "libtsan.so"))
    raise ValueError(f"unknown flavour {name}")


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _check(cmd: Sequence[str], what: str, **kw: object) -> None:
    res = subprocess.run(list(cmd), capture_output=True, text=True, check=False,
                         **kw)  # type: ignore[call-overload]
    if res.returncode != 0:
        raise BuildError(f"{what} failed: {' '.join(cmd)}\n{res.stdout}{res.stderr}")


def _meson() -> str:
    found = shutil.which("meson") or str(Path(sys.executable).parent / "meson")
    if not os.path.exists(found):
        raise BuildError("meson is not on PATH (pip install meson ninja)")
    return found


@functools.cache
def build(name: str) -> Flavour:
    """Build (or bring up to date) libcando and the wrapper for a flavour; once per process."""
    fl = flavour(name)
    meson = _meson()
    with _locked(BUILD / f".{fl.name}.lock"):
        opts = ["-Dwrapper=true", "-Dpython=false", "--buildtype=debugoptimized"]
        if fl.sanitize:
            opts += [f"-Db_sanitize={fl.sanitize}", "-Db_lundef=false"]
        env = dict(os.environ, CC=fl.cc)
        if not (fl.builddir / "build.ninja").is_file():
            if fl.builddir.exists():
                shutil.rmtree(fl.builddir)
            _check([meson, "setup", str(fl.builddir), *opts], "meson setup", cwd=REPO, env=env)
        _check([meson, "compile", "-C", str(fl.builddir)], "meson compile", cwd=REPO, env=env)
    return fl


@functools.cache
def program(name: str, flavour_name: str = "native", static: bool = False) -> Path:
    """Compile one program for a flavour (static: against libcando.a, for the kernel lane)."""
    fl = build(flavour_name)
    src = PROGRAMS[name]
    suffix = "-static" if static else ""
    out = fl.builddir / "progs" / f"{name}{suffix}"
    out.parent.mkdir(exist_ok=True)
    cmd = [fl.cc, *CFLAGS, *fl.cflags, "-pthread", f"-I{REPO / 'include'}", "-o", str(out),
           str(src)]
    if static:
        cmd[1:1] = ["-static"]
        cmd.append(str(fl.libdir / "libcando.a"))
    elif name not in NO_LIBCANDO:
        cmd += [f"-L{fl.libdir}", "-lcando", f"-Wl,-rpath,{fl.libdir}"]
    with _locked(BUILD / f".{fl.name}.lock"):
        tmp = out.with_name(f".{out.name}.{os.getpid()}")
        cmd[cmd.index(str(out))] = str(tmp)
        _check(cmd, f"compiling {src.name}")
        os.replace(tmp, out)
    return out


def namespace(tag: str) -> str:
    return f"rel-{tag}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


@dataclasses.dataclass
class Run:
    argv: list[str]
    returncode: int
    stdout: str
    stderr: str
    seconds: float
    pid: int = 0

    def reports(self) -> list[str]:
        """Sanitizer / memcheck findings in stderr (empty: clean)."""
        return [ln for ln in self.stderr.splitlines() if SANITIZER_REPORT.search(ln)]

    def leaked_fds(self) -> list[str]:
        """valgrind --track-fds: the program exited with more than the 3 std fds open.

        Only the top process counts: a forked child that ``_exit``s keeps what it
        inherited, by design.
        """
        return [m.group(0) for m in FD_SUMMARY.finditer(self.stderr)
                if int(m.group(1)) == self.pid and int(m.group(2)) > int(m.group(3))]

    def describe(self) -> str:
        return (f"$ {' '.join(self.argv)}\nexit {self.returncode} after {self.seconds:.1f}s\n"
                f"--- stdout (tail)\n{self.stdout[-6000:]}\n--- stderr (tail)\n"
                f"{self.stderr[-6000:]}")


def run(flavour_name: str, name: str, args: Sequence[str] = (), *, wrapped: bool = True,
        env: dict[str, str] | None = None, timeout: float = 120) -> Run:
    """Run a program of a flavour, under the wrapper (fresh world) unless told otherwise."""
    fl = build(flavour_name)
    exe = program(name, flavour_name)
    argv = [str(exe), *args]
    if flavour_name == "valgrind":
        argv = [*VALGRIND, *argv]
    full = dict(os.environ)
    for var in ("LD_PRELOAD", "VSOCK_WRAPPER_FULL", "VSOCK_WRAPPER_CID"):
        full.pop(var, None)
    if wrapped:
        full.update(fl.env(), VSOCK_WRAPPER_NAMESPACE=namespace(name), VSOCK_WRAPPER_CID="2")
    elif fl.runtime:
        full.update(fl.env(), LD_PRELOAD=fl.runtime)
    full.update(env or {})
    start = time.monotonic()
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          env=full, stdin=subprocess.DEVNULL) as proc:
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            err += f"\n[killed: timed out after {timeout}s]"
    return Run(argv, proc.returncode, out, err, time.monotonic() - start, proc.pid)


RESULT = re.compile(r"^([A-Za-z0-9_]+): (ok|FAIL.*)$")


def results(output: str) -> dict[str, str]:
    """``name: ok`` / ``name: FAIL ...`` lines of a case-table program."""
    out: dict[str, str] = {}
    for line in output.splitlines():
        m = RESULT.match(line)
        if m:
            out[m.group(1)] = m.group(2)
    return out


def figures(output: str) -> dict[str, float]:
    """``key=value`` pairs of a program's ``figures:`` lines."""
    out: dict[str, float] = {}
    for line in output.splitlines():
        if line.startswith("figures:"):
            for key, value in re.findall(r"(\w+)=(-?[0-9.]+)", line):
                out[key] = float(value)
    return out


# ------------------------------------------------------------------------------- CLI


def _show(res: Run) -> int:
    sys.stdout.write(res.stdout)
    sys.stderr.write(res.stderr)
    print(f"[{' '.join(res.argv)}: exit {res.returncode}, {res.seconds:.1f}s]", file=sys.stderr)
    return res.returncode


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("soak", help="create/destroy cycles and datagrams: fds and RSS flat")
    s.add_argument("--cycles", type=int, default=100_000)
    s.add_argument("--datagrams", type=int, default=1_000_000)
    ld = sub.add_parser("load", help="N client processes x M datagrams into one epoll server")
    ld.add_argument("--clients", type=int, default=16)
    ld.add_argument("--count", type=int, default=20_000)
    ld.add_argument("--full", choices=("block", "drop"), default="block")
    kl = sub.add_parser("kernel-load", help="the load program on the real-kernel lane (QEMU)")
    kl.add_argument("--clients", type=int, default=4)
    kl.add_argument("--count", type=int, default=300)
    r = sub.add_parser("run", help="any program in any flavour, under the wrapper")
    r.add_argument("flavour")
    r.add_argument("program", choices=sorted(PROGRAMS))
    r.add_argument("args", nargs="*")
    a = ap.parse_args(argv)
    if a.cmd == "soak":
        return _show(run("native", "soak", [f"cycles={a.cycles}", f"datagrams={a.datagrams}"],
                         timeout=3600))
    if a.cmd == "load":
        mode = "expect-all" if a.full == "block" else "count-loss"
        return _show(run("native", "load", [f"clients={a.clients}", f"count={a.count}", mode],
                         env={"VSOCK_WRAPPER_FULL": a.full}, timeout=3600))
    if a.cmd == "kernel-load":
        exe = program("load", "native", static=True)
        spec = f"{exe}::clients={a.clients},count={a.count},count-loss"
        return subprocess.call([sys.executable, str(TESTS / "kernel" / "vm.py"), "run",
                                "--strict", spec])
    return _show(run(a.flavour, a.program, a.args, timeout=3600))


if __name__ == "__main__":
    sys.exit(main())
