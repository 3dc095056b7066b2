#!/usr/bin/env python3
"""Run static programs on Debian's stock kernel under QEMU (the real-kernel test lane).

Linux carries ``AF_VSOCK`` datagrams only through VMware's VMCI transport.  With no
VMCI device, ``vmw_vmci`` comes up in its host personality (context 2) and datagrams
from that context to itself are delivered locally, so Debian's kernel under QEMU
(software emulation, no KVM needed) is a real vsock datagram stack.  See
``shared/spec/real-kernel.md``.

What this module does:

* ``fetch()``: ``apt-get download`` the kernel image package that
  ``linux-image-amd64`` depends on, and ``busybox-static``; unpack the kernel, the
  three modules (``vsock.ko``, ``vmw_vmci.ko``, ``vmw_vsock_vmci_transport.ko``) and
  ``vsock_loopback.ko`` (shipped, not loaded) and busybox into the cache directory:
  ``$CANDO_KERNEL_CACHE``, default ``<repo>/build/kernel-lane/``.  A populated cache
  is used as is, with no apt call at all (``fetch --refresh`` re-resolves).
* ``run_programs()``: pack an initramfs (cpio newc + gzip, written in Python, no root
  needed) with busybox, the modules, the programs and an ``/init`` that mounts
  proc/sys/devtmpfs, insmods the modules in order, runs each program and prints marker
  lines with its exit status, then ``poweroff -f``.  Boot it with a hard timeout and
  parse the serial console into per-program output and exit status.
* ``qemu_available()``: ``(False, reason)`` only where QEMU cannot run at all.

Program specifications (CLI and ``Program.parse``)::

    /abs/path/prog                  no arguments
    /abs/path/prog::arg1,arg2       arguments, split on ","
    /abs/path/prog::                no arguments either

Arguments cannot contain ","; use a wrapper program for anything fancier.  Programs
must be statically linked (the initramfs has no libc); a dynamic one is refused.
Inside the guest each program runs as ``/progs/NN-<basename>`` with its working
directory ``/tmp`` and ``CANDO_KERNEL_LANE=1`` in its environment.

Guest console protocol: every marker line is ``@@CANDO <token> <WORD> ...`` with a
random per-boot token, so program output cannot be taken for one:
``BEGIN <i> <name>``, ``END <i> <status>``, ``INSMOD <module> <status>``, ``ALLDONE``.
Kernel messages are silenced (``dmesg -n 1``) before the programs run.

CLI::

    python3 tests/kernel/vm.py fetch [--refresh]
    python3 tests/kernel/vm.py run [--timeout S] [--program-timeout S] [--accel A]
                                   [--strict] PROG [PROG ...]
    python3 tests/kernel/vm.py console [--timeout S] PROG ...  # raw serial log

``run`` prints, per program, a header line ``=== <name> (exit <status>) ===`` on
stderr and the program's own lines on stdout.  It exits 0 if the boot completed
(whatever the programs' statuses), 2 if the boot failed or timed out (the console so
far is printed on stderr), 3 if QEMU is unavailable, 4 on fetch/setup errors.
``--strict`` also makes it exit 1 if a program exited non-zero.

Environment: ``CANDO_KERNEL_CACHE`` (cache dir), ``CANDO_QEMU`` (QEMU binary),
``CANDO_KERNEL_ACCEL`` (``tcg`` by default; ``kvm`` only where KVM really works: on
nested setups with a /dev/kvm that cannot run guests the boot hangs in the BIOS),
``CANDO_KERNEL_TIMEOUT`` (default boot timeout, seconds).  Under TCG a boot that runs
a few small programs takes about 5 s.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import fcntl
import gzip
import io
import json
import os
import re
import secrets
import shutil
import struct
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEFAULT_TIMEOUT = float(os.environ.get("CANDO_KERNEL_TIMEOUT", "180"))
META_PACKAGE = "linux-image-amd64"
BUSYBOX_PACKAGE = "busybox-static"
# Loaded in this order.
MODULES: tuple[str, ...] = (
    "net/vmw_vsock/vsock.ko",
    "drivers/misc/vmw_vmci/vmw_vmci.ko",
    "net/vmw_vsock/vmw_vsock_vmci_transport.ko",
)
# Shipped in the initramfs (under /lib/modules/extra) but not loaded.
EXTRA_MODULES: tuple[str, ...] = ("net/vmw_vsock/vsock_loopback.ko",)
MANIFEST = "manifest.json"
MARK = "@@CANDO"


class VMError(RuntimeError):
    """Setup failed: download, unpack or a bad program."""


# --------------------------------------------------------------------------- cache


def cache_dir() -> Path:
    env = os.environ.get("CANDO_KERNEL_CACHE")
    return Path(env).resolve() if env else REPO / "build" / "kernel-lane"


@contextlib.contextmanager
def locked(directory: Path, name: str = ".lock") -> Iterator[None]:
    """Hold an exclusive flock on ``directory/name`` (not reentrant: use distinct names)."""
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / name, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _run(cmd: Sequence[str], **kw: object) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(  # type: ignore[call-overload, no-any-return]
            list(cmd), capture_output=True, text=True, check=False, **kw
        )
    except FileNotFoundError as exc:
        raise VMError(f"{cmd[0]}: not found ({exc})") from exc


def _resolve_kernel_package() -> str:
    """The linux-image-<ver>-amd64 package that linux-image-amd64 depends on."""

    def lookup() -> str | None:
        res = _run(["apt-cache", "depends", META_PACKAGE])
        for line in res.stdout.splitlines():
            m = re.match(r"\s*Depends:\s*(linux-image-\S+)", line)
            if m:
                return m.group(1)
        return None

    pkg = lookup()
    if pkg is None and os.geteuid() == 0:
        _run(["apt-get", "update"])  # a fresh machine may have no package lists yet
        pkg = lookup()
    if pkg is None:
        raise VMError(
            f"cannot resolve the kernel package from {META_PACKAGE} "
            "(apt-cache depends found nothing; run apt-get update)"
        )
    return pkg


def _apt_download(pkg: str, dest: Path) -> Path:
    before = set(dest.glob("*.deb"))
    res = _run(["apt-get", "download", pkg], cwd=dest)
    if res.returncode != 0:
        raise VMError(f"apt-get download {pkg} failed:\n{res.stdout}{res.stderr}")
    new = sorted(set(dest.glob("*.deb")) - before)
    if not new:  # already there from an interrupted run
        new = sorted(dest.glob(f"{pkg}_*.deb"))
    if not new:
        raise VMError(f"apt-get download {pkg}: no .deb appeared in {dest}")
    return new[-1]


def _extract(deb: Path, wanted: dict[str, Path]) -> None:
    """Extract members (paths relative to /, e.g. 'boot/vmlinuz-X') of a .deb.

    Uses ``dpkg-deb --fsys-tarfile`` (what ``dpkg -x`` does) but writes only the files
    asked for, so the cache holds a few MB instead of the whole module tree.
    """
    proc = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    found: set[str] = set()
    with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
        for member in tar:
            name = member.name.removeprefix("./")
            if name in wanted and member.isfile():
                src = tar.extractfile(member)
                assert src is not None
                wanted[name].parent.mkdir(parents=True, exist_ok=True)
                with open(wanted[name], "wb") as out:
                    shutil.copyfileobj(src, out)
                found.add(name)
    proc.stdout.close()
    if proc.wait() != 0:
        raise VMError(f"dpkg-deb --fsys-tarfile {deb} failed")
    missing = set(wanted) - found
    if missing:
        raise VMError(f"{deb.name} lacks {sorted(missing)}")


@dataclasses.dataclass(frozen=True)
class Kernel:
    """Everything a boot needs, in the cache."""

    version: str
    package: str
    vmlinuz: Path
    modules: tuple[Path, ...]
    extra_modules: tuple[Path, ...]
    busybox: Path


def _load_manifest(root: Path) -> Kernel | None:
    try:
        data = json.loads((root / MANIFEST).read_text())
        kernel = Kernel(
            version=data["version"],
            package=data["package"],
            vmlinuz=root / data["vmlinuz"],
            modules=tuple(root / m for m in data["modules"]),
            extra_modules=tuple(root / m for m in data["extra_modules"]),
            busybox=root / data["busybox"],
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None
    files = (kernel.vmlinuz, kernel.busybox, *kernel.modules, *kernel.extra_modules)
    return kernel if all(f.is_file() for f in files) else None


def fetch(refresh: bool = False, log: bool = False) -> Kernel:
    """Download and unpack the kernel and busybox into the cache (once)."""
    root = cache_dir()
    with locked(root):
        if not refresh:
            kernel = _load_manifest(root)
            if kernel is not None:
                return kernel
        t0 = time.monotonic()
        pkg = _resolve_kernel_package()
        version = pkg.removeprefix("linux-image-")
        debs = root / "debs"
        debs.mkdir(exist_ok=True)
        kdeb = _apt_download(pkg, debs)
        bdeb = _apt_download(BUSYBOX_PACKAGE, debs)
        t1 = time.monotonic()
        kdir = root / version
        mods = [f"lib/modules/{version}/kernel/{m}" for m in (*MODULES, *EXTRA_MODULES)]
        wanted = {f"boot/vmlinuz-{version}": kdir / "vmlinuz"}
        wanted.update({m: kdir / "modules" / Path(m).name for m in mods})
        _extract(kdeb, wanted)
        _extract(bdeb, {"bin/busybox": root / "busybox" / "busybox"})
        (root / "busybox" / "busybox").chmod(0o755)
        # The .debs are only needed to unpack: keep the cache small.
        kdeb.unlink()
        bdeb.unlink()
        manifest = {
            "version": version,
            "package": pkg,
            "vmlinuz": f"{version}/vmlinuz",
            "modules": [f"{version}/modules/{Path(m).name}" for m in MODULES],
            "extra_modules": [f"{version}/modules/{Path(m).name}" for m in EXTRA_MODULES],
            "busybox": "busybox/busybox",
            "download_seconds": round(t1 - t0, 2),
            "unpack_seconds": round(time.monotonic() - t1, 2),
        }
        tmp = root / (MANIFEST + ".tmp")
        tmp.write_text(json.dumps(manifest, indent=1) + "\n")
        tmp.replace(root / MANIFEST)
        if log:
            print(
                f"fetched {pkg} and {BUSYBOX_PACKAGE}: download "
                f"{manifest['download_seconds']}s, unpack {manifest['unpack_seconds']}s",
                file=sys.stderr,
            )
        kernel = _load_manifest(root)
        assert kernel is not None
        return kernel


# ------------------------------------------------------------------------ programs


@dataclasses.dataclass(frozen=True)
class Program:
    path: Path
    args: tuple[str, ...] = ()

    @classmethod
    def parse(cls, spec: str) -> Program:
        path, sep, rest = spec.partition("::")
        args = tuple(rest.split(",")) if sep and rest else ()
        return cls(Path(path).resolve(), args)

    @property
    def name(self) -> str:
        return self.path.name


def _is_static_elf(path: Path) -> tuple[bool, str]:
    """(ok, reason): a 64-bit little-endian x86_64 ELF with no PT_INTERP."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        return False, str(exc)
    if data[:4] != b"\x7fELF":
        return False, "not an ELF file"
    if data[4] != 2 or data[5] != 1:
        return False, "not a 64-bit little-endian ELF"
    (machine,) = struct.unpack_from("<H", data, 18)
    if machine != 62:
        return False, f"not x86_64 (e_machine {machine})"
    (phoff,) = struct.unpack_from("<Q", data, 32)
    phentsize, phnum = struct.unpack_from("<HH", data, 54)
    for i in range(phnum):
        (ptype,) = struct.unpack_from("<I", data, phoff + i * phentsize)
        if ptype == 3:  # PT_INTERP
            return False, "dynamically linked (build it with -static)"
    return True, ""


# ----------------------------------------------------------------------- initramfs


class _Cpio:
    """A minimal cpio "newc" writer."""

    def __init__(self) -> None:
        self.buf = io.BytesIO()
        self.ino = 1000

    def _entry(self, name: str, mode: int, data: bytes = b"", nlink: int = 1) -> None:
        self.ino += 1
        raw = name.encode() + b"\0"
        hdr = "070701" + "".join(
            f"{v:08x}" for v in (self.ino, mode, 0, 0, nlink, 0, len(data), 0, 0, 0, 0, len(raw), 0)
        )
        self.buf.write(hdr.encode() + raw)
        self.buf.write(b"\0" * (-(110 + len(raw)) % 4))
        self.buf.write(data)
        self.buf.write(b"\0" * (-len(data) % 4))

    def dir(self, name: str) -> None:
        self._entry(name, 0o040755, nlink=2)

    def file(self, name: str, data: bytes, perm: int = 0o644) -> None:
        self._entry(name, 0o100000 | perm, data)

    def symlink(self, name: str, target: str) -> None:
        self._entry(name, 0o120777, target.encode())

    def finish(self) -> bytes:
        self._entry("TRAILER!!!", 0)
        return self.buf.getvalue()


def _sh_quote(s: str) -> str:
    return "'" + s.replace("'", "'\\''") + "'"


def _init_script(
    token: str,
    progs: Sequence[tuple[str, Program]],
    modules: Sequence[str],
    program_timeout: float | None = None,
) -> str:
    m = f"{MARK} {token}"
    # busybox timeout execs the program and kills it from a child: status 137.
    wrap = f"timeout -s KILL {max(1, int(program_timeout))} " if program_timeout else ""
    lines = [
        "#!/bin/busybox sh",
        "/bin/busybox --install -s /bin",
        "export PATH=/bin",
        "mount -t proc proc /proc",
        "mount -t sysfs sysfs /sys",
        "mount -t devtmpfs devtmpfs /dev",
        "mount -t tmpfs tmpfs /tmp",
    ]
    for mod in modules:
        lines.append(f'insmod /lib/modules/{mod}; echo "{m} INSMOD {mod} $?"')
    lines += ["dmesg -n 1", "cd /tmp", "export CANDO_KERNEL_LANE=1"]
    for i, (guest, prog) in enumerate(progs, 1):
        argv = " ".join(_sh_quote(a) for a in (guest, *prog.args))
        lines += [
            f'echo "{m} BEGIN {i} {prog.name}"',
            f"{wrap}{argv} </dev/null 2>&1",
            f'echo "{m} END {i} $?"',
        ]
    lines += [
        f'echo "{m} ALLDONE"',
        "sync",
        "poweroff -f",
        "sleep 5",
        "echo o > /proc/sysrq-trigger",
        "",
    ]
    return "\n".join(lines)


def build_initramfs(
    kernel: Kernel,
    programs: Sequence[Program],
    token: str,
    program_timeout: float | None = None,
) -> bytes:
    """The gzip'ed cpio newc initramfs for one boot."""
    cpio = _Cpio()
    for d in (
        "bin",
        "dev",
        "proc",
        "sys",
        "tmp",
        "progs",
        "lib",
        "lib/modules",
        "lib/modules/extra",
    ):
        cpio.dir(d)
    cpio.file("bin/busybox", kernel.busybox.read_bytes(), 0o755)
    cpio.symlink("bin/sh", "busybox")
    mods = []
    for mod in kernel.modules:
        cpio.file(f"lib/modules/{mod.name}", mod.read_bytes())
        mods.append(mod.name)
    for mod in kernel.extra_modules:
        cpio.file(f"lib/modules/extra/{mod.name}", mod.read_bytes())
    guests: list[tuple[str, Program]] = []
    for i, prog in enumerate(programs, 1):
        ok, why = _is_static_elf(prog.path)
        if not ok:
            raise VMError(f"{prog.path}: {why}")
        guest = f"/progs/{i:02d}-{prog.name}"
        cpio.file(guest.lstrip("/"), prog.path.read_bytes(), 0o755)
        guests.append((guest, prog))
    cpio.file("init", _init_script(token, guests, mods, program_timeout).encode(), 0o755)
    return gzip.compress(cpio.finish(), compresslevel=1)


# ---------------------------------------------------------------------------- qemu


def qemu_binary() -> str:
    return os.environ.get("CANDO_QEMU", "qemu-system-x86_64")


def qemu_available() -> tuple[bool, str]:
    """(True, version) if QEMU can run here; (False, reason) if it cannot at all."""
    binary = qemu_binary()
    path = shutil.which(binary)
    if path is None:
        return False, f"{binary} not found (apt-get install qemu-system-x86)"
    try:
        res = subprocess.run(
            [path, "--version"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, f"{path} cannot be executed: {exc}"
    if res.returncode != 0:
        return False, f"{path} --version failed ({res.returncode}): {res.stderr.strip()}"
    return True, res.stdout.splitlines()[0] if res.stdout else path


@dataclasses.dataclass
class ProgramResult:
    name: str
    args: tuple[str, ...]
    output: str = ""
    status: int | None = None  # None: it never finished (boot died or timed out)
    started: bool = False


@dataclasses.dataclass
class BootResult:
    programs: list[ProgramResult]
    console: str
    completed: bool  # the /init reached ALLDONE
    timed_out: bool
    seconds: float
    insmod: dict[str, int]
    initramfs_seconds: float = 0.0
    kernel: str = ""

    @property
    def ok(self) -> bool:
        return self.completed and not self.timed_out and all(s == 0 for s in self.insmod.values())

    def describe_failure(self) -> str:
        if self.timed_out:
            why = f"QEMU timed out after {self.seconds:.0f}s"
        elif not self.completed:
            why = "the guest stopped before finishing (panic or crash)"
        elif any(self.insmod.values()):
            why = f"insmod failed: {self.insmod}"
        else:
            return ""
        return f"{why}; guest console so far:\n{self.console}"

    def __getitem__(self, name: str) -> ProgramResult:
        for p in self.programs:
            if p.name == name:
                return p
        raise KeyError(name)


def parse_console(
    token: str, console: str, programs: Sequence[Program]
) -> tuple[list[ProgramResult], dict[str, int], bool]:
    results = [ProgramResult(p.name, p.args) for p in programs]
    insmod: dict[str, int] = {}
    completed = False
    current: ProgramResult | None = None
    chunks: list[str] = []
    prefix = f"{MARK} {token} "
    for line in console.splitlines():
        idx = line.find(prefix)
        if idx < 0:
            if current is not None:
                chunks.append(line)
            continue
        words = line[idx + len(prefix) :].split()
        if not words:
            continue
        if words[0] == "INSMOD" and len(words) == 3:
            insmod[words[1]] = int(words[2])
        elif words[0] == "BEGIN" and len(words) >= 2:
            current = results[int(words[1]) - 1]
            current.started = True
            chunks = []
        elif words[0] == "END" and len(words) == 3 and current is not None:
            if idx > 0:
                chunks.append(line[:idx])
            current.output = "".join(c + "\n" for c in chunks)
            current.status = int(words[2])
            current = None
        elif words[0] == "ALLDONE":
            completed = True
    if current is not None:  # died mid-program: keep what it printed
        current.output = "".join(c + "\n" for c in chunks)
    return results, insmod, completed


def run_programs(
    programs: Sequence[Program | str],
    timeout: float | None = None,
    accel: str | None = None,
    kernel: Kernel | None = None,
    program_timeout: float | None = None,
) -> BootResult:
    """Boot one VM that runs ``programs`` in order; never raises on guest failure.

    ``timeout`` bounds the whole boot (QEMU is killed); ``program_timeout``, if set,
    bounds each program inside the guest (SIGKILL, status 137), so one hanging
    program does not cost the others their results.
    """
    progs = [p if isinstance(p, Program) else Program.parse(p) for p in programs]
    kernel = kernel or fetch()
    timeout = DEFAULT_TIMEOUT if timeout is None else timeout
    accel = accel or os.environ.get("CANDO_KERNEL_ACCEL", "tcg")
    token = secrets.token_hex(6)
    t0 = time.monotonic()
    initrd = build_initramfs(kernel, progs, token, program_timeout)
    t_initrd = time.monotonic() - t0
    with tempfile.TemporaryDirectory(prefix="cando-vm-") as tmp:
        initrd_path = Path(tmp) / "initrd.gz"
        initrd_path.write_bytes(initrd)
        cmd = [
            qemu_binary(),
            "-accel",
            accel,
            "-m",
            "512",
            "-smp",
            "1",
            "-nodefaults",
            "-nographic",
            "-serial",
            "stdio",
            "-no-reboot",
            "-kernel",
            str(kernel.vmlinuz),
            "-initrd",
            str(initrd_path),
            "-append",
            "console=ttyS0 quiet panic=-1",
        ]
        t1 = time.monotonic()
        timed_out = False
        proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        try:
            raw, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            proc.kill()
            raw, _ = proc.communicate()
        seconds = time.monotonic() - t1
    console = raw.decode("utf-8", "replace").replace("\r\n", "\n").replace("\r", "\n")
    results, insmod, completed = parse_console(token, console, progs)
    return BootResult(
        programs=results,
        console=console,
        completed=completed,
        timed_out=timed_out,
        seconds=seconds,
        insmod=insmod,
        initramfs_seconds=t_initrd,
        kernel=kernel.version,
    )


# ----------------------------------------------------------------------------- CLI


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    sub = ap.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("fetch", help="download and unpack into the cache only")
    f.add_argument("--refresh", action="store_true", help="re-resolve and re-download")
    for name in ("run", "console"):
        r = sub.add_parser(name, help="boot once and run PROG[::arg,arg] in order")
        r.add_argument("programs", nargs="+", metavar="PROG")
        r.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT)
        r.add_argument("--accel", default=None, help="QEMU accelerator (default tcg)")
        r.add_argument(
            "--program-timeout",
            type=float,
            default=None,
            help="kill each program after this many seconds (in the guest)",
        )
        r.add_argument("--strict", action="store_true", help="exit 1 if a program exits non-zero")
    args = ap.parse_args(argv)
    try:
        if args.cmd == "fetch":
            kernel = fetch(refresh=args.refresh, log=True)
            print(f"{kernel.package}: {kernel.vmlinuz.parent} (cache {cache_dir()})")
            return 0
        ok, why = qemu_available()
        if not ok:
            print(f"vm.py: QEMU unavailable: {why}", file=sys.stderr)
            return 3
        result = run_programs(
            args.programs,
            timeout=args.timeout,
            accel=args.accel,
            program_timeout=args.program_timeout,
        )
    except VMError as exc:
        print(f"vm.py: {exc}", file=sys.stderr)
        return 4
    if args.cmd == "console":
        sys.stdout.write(result.console)
    else:
        for p in result.programs:
            status = (
                "did not run"
                if not p.started
                else (f"exit {p.status}" if p.status is not None else "did not finish")
            )
            sys.stdout.flush()
            print(f"=== {p.name} ({status}) ===", file=sys.stderr, flush=True)
            sys.stdout.write(p.output)
            sys.stdout.flush()
    print(
        f"vm.py: kernel {result.kernel}, initramfs {result.initramfs_seconds:.2f}s, "
        f"boot+run {result.seconds:.1f}s",
        file=sys.stderr,
    )
    if not result.ok:
        print(f"vm.py: {result.describe_failure()}", file=sys.stderr)
        return 2
    if args.strict and any(p.status != 0 for p in result.programs):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
