"""vsock_wrapper against the Semantics rules: the conformance program
(tests/conformance/vsock_conformance.c) under LD_PRELOAD must print exactly
expected-wrapper.txt, one pytest case per rule so a failure names it; and the
wrapper's expectations must equal the real kernel's (expected-kernel.txt, read
off Debian's kernel with VMCI by tests/kernel/vm.py) except for the cases whose
result depends on which CIDs are local (cid_dependent.txt).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from wrapper_helpers import CONFORMANCE, compiler, find_wrapper, unique_namespace, wrapped_env

SOURCE = CONFORMANCE / "vsock_conformance.c"


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


EXPECTED = _lines(CONFORMANCE / "expected-wrapper.txt")
KERNEL = _lines(CONFORMANCE / "expected-kernel.txt")
CID_DEPENDENT = set(_lines(CONFORMANCE / "cid_dependent.txt"))


def _name(line: str) -> str:
    return line.split(":", 1)[0]


CASES = [_name(line) for line in EXPECTED if not line.startswith("done:")]


@pytest.fixture(scope="module")
def vsw_lib() -> str:
    return find_wrapper()


@pytest.fixture(scope="module")
def conformance_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("conformance") / "vsock_conformance"
    subprocess.run([compiler(), "-std=gnu11", "-O2", "-Wall", "-Wextra", "-Werror", "-o", str(out),
                    str(SOURCE)], check=True, capture_output=True, text=True)
    return out


@pytest.fixture(scope="module")
def wrapper_output(vsw_lib: str, conformance_bin: Path) -> dict[str, str]:
    # CID 2 as on the VMCI host; `drop` is the mode that behaves like the kernel
    # on a full receiver; a fresh world so auto-bound ports start at 1024.
    env = wrapped_env(vsw_lib, unique_namespace("conf"), cid=2, VSOCK_WRAPPER_FULL="drop")
    proc = subprocess.run([str(conformance_bin)], env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert lines and lines[-1] == f"done: {len(CASES)} cases", lines[-3:]
    return {_name(line): line for line in lines}


def test_output_matches_expected_exactly(wrapper_output: dict[str, str]) -> None:
    assert list(wrapper_output.values()) == EXPECTED


@pytest.mark.parametrize("case", CASES)
def test_rule(case: str, wrapper_output: dict[str, str]) -> None:
    expected = next(line for line in EXPECTED if _name(line) == case)
    assert wrapper_output.get(case) == expected


def test_kernel_and_wrapper_expectations_agree() -> None:
    """The wrapper's expected output is the kernel's, outside the CID-dependent cases."""
    assert [_name(line) for line in KERNEL] == [_name(line) for line in EXPECTED]
    differ = {_name(k) for k, w in zip(KERNEL, EXPECTED, strict=True) if k != w}
    assert differ <= CID_DEPENDENT, differ - CID_DEPENDENT
    # The list names real cases, each of which really differs.
    assert CID_DEPENDENT <= set(CASES)
    assert differ == CID_DEPENDENT


def test_cid_dependent_list_in_source_matches_file() -> None:
    listed = {line.split("CID-DEPENDENT:", 1)[1].strip()
              for line in SOURCE.read_text().splitlines() if "CID-DEPENDENT:" in line}
    assert listed == CID_DEPENDENT


def test_conformance_builds_static(tmp_path: Path) -> None:
    out = tmp_path / "vsock_conformance_static"
    proc = subprocess.run([compiler(), "-std=gnu11", "-O2", "-Wall", "-Wextra", "-Werror",
                           "-static", "-o", str(out), str(SOURCE)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert b"INTERP" not in subprocess.run(["readelf", "-l", str(out)], capture_output=True).stdout

