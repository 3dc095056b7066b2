"""The real-kernel lane: libcando and the conformance program on a real vsock stack.

One session-scoped fixture builds the static programs, boots Debian's stock kernel
under QEMU once (``tests/kernel/vm.py``) and runs them all; the tests below read the
guest's output.  Skipped (with the reason) only where QEMU cannot run at all; a
failed download, build or boot is a failure.

Programs, in boot order:

* ``tests/conformance/vsock_conformance.c`` (if present; first, because it expects a
  freshly booted kernel whose auto-bound ports start at 1024).  Built statically for
  the guest and dynamically for the host, where it runs under ``libvsock_wrapper.so``
  (``VSOCK_WRAPPER_CID=2``, ``VSOCK_WRAPPER_FULL=drop``, a fresh
  ``VSOCK_WRAPPER_NAMESPACE``).  The two outputs must be equal except for the cases
  named in ``tests/conformance/cid_dependent.txt``, whose result depends on which
  CIDs are local (none in the guest, 2 under the wrapper).  Each configuration is
  also held to its own expectation: ``tests/conformance/expected-wrapper.txt`` (which
  must cover every CID-dependent case) and ``expected-kernel.txt`` (if present).
* ``tests/kernel/probe.c``: raw AF_VSOCK datagrams flow in the guest.
* ``tests/kernel/lib_kernel.c`` linked with ``libcando.a``: one pytest case per line
  of its ``cases[]`` table.

File formats: ``cid_dependent.txt`` has one case name per line (``#`` comments and
blank lines ignored; anything after the name is ignored).  ``expected-*.txt`` hold
lines exactly as the program prints them, ``name: result``.  A program's result lines
are ``name: result`` (``info:`` and ``done:`` lines are not cases).

Everything is built under the lane's cache (``$CANDO_KERNEL_CACHE``, default
``build/kernel-lane/``): ``meson/`` (libcando.a and the wrapper) and ``progs/``.
"""

from __future__ import annotations

import dataclasses
import os
import re
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "kernel"))
import vm  # noqa: E402  (tests/kernel/vm.py)

REPO = HERE.parent
KERNEL_DIR = HERE / "kernel"
CONFORMANCE_DIR = HERE / "conformance"
CONFORMANCE_SRC = CONFORMANCE_DIR / "vsock_conformance.c"
LIB_SRC = KERNEL_DIR / "lib_kernel.c"
PROBE_SRC = KERNEL_DIR / "probe.c"
CFLAGS = ["-std=gnu11", "-Wall", "-Wextra", "-Werror", "-O2", "-g"]
BOOT_TIMEOUT = float(os.environ.get("CANDO_KERNEL_TIMEOUT", "300"))
PROGRAM_TIMEOUT = 120.0
HOST_TIMEOUT = 120.0
RESULT_LINE = re.compile(r"^(?P<name>[^\s:]+): (?P<result>.*)$")
NOT_CASES = frozenset({"info", "done"})


def lib_case_names() -> list[str]:
    """The case names of lib_kernel.c, in order, from its cases[] table."""
    return re.findall(r"^\s*CASE\((\w+)\),", LIB_SRC.read_text(), re.MULTILINE)


def parse_results(output: str) -> dict[str, list[str]]:
    """name -> results (a list, so a case reported twice shows up)."""
    results: dict[str, list[str]] = {}
    for line in output.splitlines():
        m = RESULT_LINE.match(line)
        if m and m.group("name") not in NOT_CASES:
            results.setdefault(m.group("name"), []).append(m.group("result"))
    return results


def read_names(path: Path) -> list[str]:
    names = []
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            names.append(re.split(r"[\s:]", line, maxsplit=1)[0])
    return names


# ------------------------------------------------------------------------ building


def _run(cmd: list[str], what: str, **kw: object) -> subprocess.CompletedProcess[str]:
    res: subprocess.CompletedProcess[str] = subprocess.run(  # type: ignore[call-overload]
        cmd, capture_output=True, text=True, check=False, **kw
    )
    if res.returncode != 0:
        pytest.fail(f"{what} failed ({res.returncode}): {' '.join(cmd)}\n{res.stdout}{res.stderr}")
    return res


def build_meson(builddir: Path) -> Path:
    """libcando.a (and the wrapper, once wrapper/ has a meson.build) in ``builddir``."""
    meson = shutil.which("meson")
    if meson is None:
        pytest.fail(
            "meson is not on PATH: the kernel lane builds libcando.a with meson >= 1.1 "
            "(pip install meson ninja)",
            pytrace=False,
        )
    wrapper = "true" if (REPO / "wrapper" / "meson.build").is_file() else "false"
    opts = [f"-Dwrapper={wrapper}", "-Dpython=false", "--buildtype=debugoptimized"]
    if (builddir / "build.ninja").is_file():
        _run([meson, "setup", "--reconfigure", str(builddir), *opts], "meson setup", cwd=REPO)
    else:
        _run([meson, "setup", str(builddir), *opts], "meson setup", cwd=REPO)
    _run([meson, "compile", "-C", str(builddir)], "meson compile", cwd=REPO)
    return builddir


def compile_c(src: Path, out: Path, static: bool, libcando: Path | None) -> str | None:
    """Compile one program; the compiler's complaint, or None on success."""
    cc = os.environ.get("CC", "gcc")
    cmd = [cc, *CFLAGS, f"-I{REPO / 'include'}", "-o", str(out), str(src)]
    if libcando is not None:
        cmd.append(str(libcando))
    if static:
        cmd.insert(1, "-static")
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        return f"{' '.join(cmd)}\n{res.stdout}{res.stderr}"
    return None


# ------------------------------------------------------------------------- the lane


@dataclasses.dataclass
class HostRun:
    """The conformance program on the host under vsock_wrapper."""

    stdout: str
    stderr: str
    status: int | None  # None: timed out

    def shown(self) -> str:
        return f"--- host output under the wrapper (exit {self.status}) ---\n{self.stdout}" + (
            f"--- its stderr ---\n{self.stderr}" if self.stderr else ""
        )


@dataclasses.dataclass(repr=False)
class Lane:
    boot: vm.BootResult
    build_errors: dict[str, str]
    wrapper: HostRun | None  # None: no conformance program


def _shown(prog: vm.ProgramResult) -> str:
    return f"--- guest output of {prog.name} (exit {prog.status}) ---\n{prog.output}"


def _wrapper_library(builddir: Path) -> Path:
    found = sorted(builddir.glob("**/libvsock_wrapper.so"))
    if not found:
        pytest.fail(f"libvsock_wrapper.so was not built in {builddir} (wrapper/meson.build?)")
    return found[0]


def run_under_wrapper(program: Path, builddir: Path) -> HostRun:
    env = dict(os.environ)
    env.update(
        LD_PRELOAD=str(_wrapper_library(builddir)),
        VSOCK_WRAPPER_CID="2",
        VSOCK_WRAPPER_FULL="drop",  # the kernel drops datagrams to a full receiver
        VSOCK_WRAPPER_NAMESPACE=f"kernel-lane-{os.getpid()}-{secrets.token_hex(4)}",
    )
    env.pop("CANDO_KERNEL_LANE", None)
    try:
        res = subprocess.run(
            [str(program)],
            capture_output=True,
            text=True,
            env=env,
            timeout=HOST_TIMEOUT,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        return HostRun(out, f"timed out after {HOST_TIMEOUT}s", None)
    return HostRun(res.stdout, res.stderr, res.returncode)


@pytest.fixture(scope="session")
def lane() -> Lane:
    ok, why = vm.qemu_available()
    if not ok:
        pytest.skip(f"QEMU cannot run here: {why}")
    try:
        kernel = vm.fetch()
    except vm.VMError as exc:
        pytest.fail(f"fetching the kernel failed: {exc}")
    cache = vm.cache_dir()
    # One session at a time builds in (and boots from) the shared build tree.
    with vm.locked(cache, ".build-lock"):
        builddir = build_meson(cache / "meson")
        libcando = builddir / "lib" / "libcando.a"
        progs_dir = cache / "progs"
        progs_dir.mkdir(parents=True, exist_ok=True)
        errors: dict[str, str] = {}
        programs = []
        wrapper = None
        # The conformance program goes first: it expects a freshly booted kernel
        # whose auto-bound ports start at 1024, as in a fresh wrapper world.
        for src, name, lib in (
            (CONFORMANCE_SRC, "vsock_conformance", None),  # plain libc, no libcando
            (PROBE_SRC, "probe", None),
            (LIB_SRC, "lib_kernel", libcando),
        ):
            if not src.is_file():
                continue
            out = progs_dir / name
            err = compile_c(src, out, static=True, libcando=lib)
            if err:
                errors[name] = err
                continue
            programs.append(vm.Program(out))
            if name == "vsock_conformance":
                host = progs_dir / "vsock_conformance.host"
                err = compile_c(src, host, static=False, libcando=lib)
                if err:
                    errors["vsock_conformance.host"] = err
                else:
                    wrapper = run_under_wrapper(host, builddir)
        boot = vm.run_programs(
            programs, timeout=BOOT_TIMEOUT, kernel=kernel, program_timeout=PROGRAM_TIMEOUT
        )
    sys.stderr.write(
        f"\nkernel lane: {boot.kernel}, initramfs {boot.initramfs_seconds:.2f}s, "
        f"boot+run {boot.seconds:.1f}s\n"
    )
    return Lane(boot, errors, wrapper)


def _program(lane: Lane, name: str) -> vm.ProgramResult:
    """The program's guest result; fails the test (with the why) if there is none."""
    if name in lane.build_errors:
        pytest.fail(f"{name} did not build:\n{lane.build_errors[name]}", pytrace=False)
    if not lane.boot.ok:
        pytest.fail(lane.boot.describe_failure(), pytrace=False)
    prog = lane.boot[name]
    if not prog.started:
        pytest.fail(f"{name} never ran; guest console:\n{lane.boot.console}", pytrace=False)
    return prog


# ---------------------------------------------------------------------------- tests


def test_boot(lane: Lane) -> None:
    boot = lane.boot
    if not boot.ok:
        pytest.fail(boot.describe_failure(), pytrace=False)
    want = {"vsock.ko": 0, "vmw_vmci.ko": 0, "vmw_vsock_vmci_transport.ko": 0}
    assert boot.insmod == want, boot.console


def test_probe(lane: Lane) -> None:
    prog = _program(lane, "probe")
    output = prog.output
    assert prog.status == 0, _shown(prog)
    assert "done: 4 cases, 0 failed" in output, _shown(prog)
    assert "received 12 bytes from (2, 1234)" in output, _shown(prog)


def test_lib_kernel_complete(lane: Lane) -> None:
    """The program ran to its end: every case reported once, status = failures."""
    prog = _program(lane, "lib_kernel")
    output = prog.output
    results = parse_results(output)
    names = lib_case_names()
    assert names, "no CASE(...) entries found in lib_kernel.c"
    assert list(results) == names, _shown(prog)
    assert all(len(r) == 1 for r in results.values()), _shown(prog)
    failed = sum(1 for r in results.values() if r[0] != "ok")
    assert f"done: {len(names)} cases, {failed} failed" in output, _shown(prog)
    assert prog.status == failed, _shown(prog)


@pytest.mark.parametrize("case", lib_case_names())
def test_lib_kernel(lane: Lane, case: str) -> None:
    prog = _program(lane, "lib_kernel")
    results = parse_results(prog.output)
    assert case in results, f"case {case} not reported\n" + _shown(prog)
    assert results[case] == ["ok"], f"{case}: {results[case]}\n" + _shown(prog)


# ---------------------------------------------------------------------- conformance


def _conformance_or_skip(lane: Lane) -> vm.ProgramResult:
    if not CONFORMANCE_SRC.is_file():
        pytest.skip(f"{CONFORMANCE_SRC.relative_to(REPO)} does not exist yet")
    return _program(lane, "vsock_conformance")


def _wrapper_run(lane: Lane) -> HostRun:
    _conformance_or_skip(lane)
    if lane.wrapper is None:
        why = lane.build_errors.get("vsock_conformance.host", "it was not run")
        pytest.fail(f"no host run under the wrapper: {why}", pytrace=False)
    return lane.wrapper


def _cid_dependent() -> list[str]:
    path = CONFORMANCE_DIR / "cid_dependent.txt"
    return read_names(path) if path.is_file() else []


def _diff(want: dict[str, list[str]], got: dict[str, list[str]], names: list[str]) -> list[str]:
    lines = []
    for name in names:
        w, g = want.get(name), got.get(name)
        if w != g:
            lines.append(f"  {name}: expected {w}, got {g}")
    return lines


def test_conformance_kernel_equals_wrapper(lane: Lane) -> None:
    prog = _conformance_or_skip(lane)
    host = _wrapper_run(lane)
    kernel = parse_results(prog.output)
    wrapper = parse_results(host.stdout)
    assert kernel, "the conformance program reported no cases in the guest\n" + _shown(prog)
    dependent = set(_cid_dependent())
    names = [n for n in dict.fromkeys([*kernel, *wrapper]) if n not in dependent]
    diff = _diff(kernel, wrapper, names)
    assert not diff, (
        "kernel (expected) vs wrapper (got), CID-independent cases:\n"
        + "\n".join(diff)
        + "\n"
        + _shown(prog)
        + host.shown()
    )


def _expectations(name: str) -> dict[str, list[str]] | None:
    path = CONFORMANCE_DIR / name
    return parse_results(path.read_text()) if path.is_file() else None


def test_conformance_cid_dependent_wrapper(lane: Lane) -> None:
    host = _wrapper_run(lane)
    dependent = _cid_dependent()
    if not dependent:
        pytest.skip("tests/conformance/cid_dependent.txt lists no cases")
    expected = _expectations("expected-wrapper.txt")
    assert expected is not None, "tests/conformance/expected-wrapper.txt is missing"
    missing = [n for n in dependent if n not in expected]
    assert not missing, f"expected-wrapper.txt has no expectation for {missing}"
    got = parse_results(host.stdout)
    diff = _diff(expected, got, list(expected))
    assert not diff, (
        "under the wrapper (VSOCK_WRAPPER_CID=2):\n" + "\n".join(diff) + "\n" + host.shown()
    )


def test_conformance_cid_dependent_kernel(lane: Lane) -> None:
    prog = _conformance_or_skip(lane)
    dependent = _cid_dependent()
    got = parse_results(prog.output)
    missing = [n for n in dependent if n not in got]
    assert not missing, f"CID-dependent cases not reported in the guest: {missing}\n" + _shown(prog)
    expected = _expectations("expected-kernel.txt")
    if expected is None:
        return  # the kernel is the reference; nothing more to hold it to
    diff = _diff(expected, got, list(expected))
    assert not diff, "on the kernel:\n" + "\n".join(diff) + "\n" + _shown(prog)
