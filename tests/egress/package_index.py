"""A tiny package index on the host's loopback, and pip for a sandbox, for the egress tests.

The index serves one wheel, `tetherprobe`, made here; pip comes from the test's own
environment, zipped with a `__main__` (the sandbox image has python3 but no pip).
"""

from __future__ import annotations

import base64
import hashlib
import io
import zipfile
from pathlib import Path

import pip

PROBE = "tetherprobe"
PROBE_VERSION = "1.0"
PROBE_WHEEL = f"{PROBE}-{PROBE_VERSION}-py3-none-any.whl"


def probe_wheel() -> bytes:
    """A wheel whose module says it was installed: `tetherprobe.HELLO`."""
    dist = f"{PROBE}-{PROBE_VERSION}.dist-info"
    files = {
        f"{PROBE}/__init__.py": b'HELLO = "installed through the egress proxy"\n',
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {PROBE}\nVersion: {PROBE_VERSION}\n".encode(),
        f"{dist}/WHEEL": (b"Wheel-Version: 1.0\nGenerator: tether-tests\nRoot-Is-Purelib: true\n"
                          b"Tag: py3-none-any\n"),
    }
    record = "".join(
        f"{name},sha256={base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=').decode()},"
        f"{len(data)}\n" for name, data in files.items()) + f"{dist}/RECORD,,\n"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as wheel:
        for name, data in files.items():
            wheel.writestr(name, data)
        wheel.writestr(f"{dist}/RECORD", record)
    return buffer.getvalue()


def write_index(root: Path) -> None:
    """`simple/tetherprobe/` (PEP 503) linking to the wheel, under `root`."""
    (root / "simple" / PROBE).mkdir(parents=True)
    (root / PROBE_WHEEL).write_bytes(probe_wheel())
    (root / "simple" / PROBE / "index.html").write_text(
        f'<!DOCTYPE html><html><body><a href="/{PROBE_WHEEL}">{PROBE_WHEEL}</a></body></html>\n')


def pip_zip() -> bytes:
    """pip, from this environment, as one zip that `python3 pip.zip ...` runs."""
    package = Path(pip.__file__).parent
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("__main__.py",
                         "import sys\nfrom pip._internal.cli.main import main\nsys.exit(main())\n")
        for path in package.rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts:
                archive.write(path, f"pip/{path.relative_to(package)}")
    return buffer.getvalue()
