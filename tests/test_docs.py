"""The documentation builds with warnings as errors, and says what the code says.

``sphinx-build -W -b html docs OUT``: the C reference comes from the headers'
comments (hawkmoth, through libclang), the Python reference from the installed
package's docstrings (autodoc). The docs dependencies are in the ``test`` extra
(and the ``docs`` extra); the build takes a couple of seconds.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

DOCS = REPO / "docs"
HEADER = REPO / "include" / "cando" / "vsock-udp.h"


@pytest.fixture(scope="module")
def html(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("docs")
    proc = subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q",
                           "-b", "html", str(DOCS), str(out)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"sphinx-build failed:\n{proc.stdout}\n{proc.stderr}"
    assert proc.stderr == "", proc.stderr  # -q: only warnings would show, and there are none
    return out


def ids(page: Path) -> set[str]:
    return set(re.findall(r'<dt class="sig sig-object (?:c|py)" id="([^"]+)"',
                          page.read_text()))


def text(page: Path) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", page.read_text()))


def test_every_page_is_built(html: Path) -> None:
    for name in ("index", "guide", "cli", "c-api", "python-api", "contract", "vsock-wrapper",
                 "real-kernel", "vsock-udp"):
        assert (html / f"{name}.html").is_file(), name


def test_c_reference_documents_every_declared_function(html: Path) -> None:
    declared = set(re.findall(r"^(udo_vsock_udp_\w+)\(", HEADER.read_text(), re.M))
    assert len(declared) == 14
    documented = {i[2:] for i in ids(html / "c-api.html") if i.startswith("c.udo_vsock_udp_")}
    assert declared <= documented
    page = text(html / "c-api.html")
    # Comments come through: a function's, a parameter field, a struct member's trailing one.
    assert "Create a datagram socket bound to vsock_info\u2019s (vcid, port)." in page
    assert "vsock_info \u2013 a struct udo_vsock_udp_server_create_info." in page
    assert "-1 (VMADDR_PORT_ANY) lets the kernel choose" in page
    assert "Log levels are bit flags" in page
    # The batch extension is documented too, in its own section.
    c_ids = ids(html / "c-api.html")
    for name in ("udo_vsock_udp_send_batch", "udo_vsock_udp_recv_batch", "udo_vsock_udp_dgram"):
        assert f"c.{name}" in c_ids, name


def test_spec_page_keeps_its_own_declarations(html: Path) -> None:
    spec = ids(html / "vsock-udp.html")
    assert "c.spec.udo_vsock_udp_server_create" in spec
    assert not any(i.startswith("c.udo_") for i in spec)  # the reference owns c.udo_*


def test_python_reference_from_docstrings(html: Path) -> None:
    documented = ids(html / "python-api.html")
    for name in ("cando.Server", "cando.Client", "cando.Server.recvfrom", "cando.Client.send",
                 "cando.local_cid", "cando.get_pkgconfig_dir", "cando.TransportUnavailableError",
                 "cando.VMADDR_CID_ANY"):
        assert name in documented, name
    assert "Directory holding cando.pc" in text(html / "python-api.html")


def test_guide_and_cli_pages(html: Path) -> None:
    guide = text(html / "guide.html")
    for phrase in ("Only VMCI carries datagrams", "ENODEV", "python -m cando --cflags --libs",
                   "cando-vsock run --cid 3"):
        assert phrase in guide, phrase
    cli = text(html / "cli.html")
    for command in ("send CID PORT", "recv [--cid CID] [PORT]", "echo [--cid CID] [PORT]",
                    "ping CID PORT"):
        assert command in cli, command
