"""The shape the code promises (docs/architecture.md): a service's `domain` package is plain Python
that imports no I/O library, not even through the modules it imports."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
IO_LIBRARIES = (
    "asyncpg", "aiokafka", "faststream", "redis", "aiosmtplib", "aioimaplib", "httpx", "openai",
)  # fmt: skip

# In a fresh interpreter: import every module of every services/*/domain package, then list the
# I/O libraries that came along.
PROBE = """
import importlib, json, pkgutil, sys
for name in sys.argv[1:]:
    package = importlib.import_module(name)
    for module in pkgutil.walk_packages(package.__path__, name + "."):
        importlib.import_module(module.name)
io = set(json.loads(sys.stdin.read()))
print(json.dumps(sorted({m.split(".")[0] for m in sys.modules} & io)))
"""


def domain_packages() -> list[str]:
    return sorted(
        f"services.{path.parent.parent.name}.domain"
        for path in (REPO / "services").glob("*/domain/__init__.py")
    )


def test_there_are_domain_packages_to_check() -> None:
    expected = {
        "services.campaign.domain",
        "services.inference.domain",
        "services.intent.domain",
        "services.workflow.domain",
    }
    assert expected <= set(domain_packages())


def test_domain_packages_import_no_io_library() -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *domain_packages()],
        input=json.dumps(IO_LIBRARIES),
        capture_output=True,
        text=True,
        cwd=REPO,
        check=True,
        timeout=60,
    )
    assert json.loads(done.stdout) == []
