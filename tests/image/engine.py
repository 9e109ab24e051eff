"""buildah and podman (Debian packages, run as root) for the image tests.

Flags from ../shared tooling notes: the vfs storage driver, chroot isolation and the host
network for builds; runc with cgroupfs for runs (crun refuses this machine's cgroups), and
explicit ulimits no higher than the host's (the defaults are above the sandbox's caps).
"""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO_ROOT / "Dockerfile"
STANDIN_SCRIPT = REPO_ROOT / ".ci" / "standin-base"
STANDIN_NAME = "python:3.11-slim"
BUILDAH = ("buildah", "--storage-driver", "vfs")
PODMAN = ("podman", "--storage-driver", "vfs", "--runtime", "runc", "--cgroup-manager",
          "cgroupfs")
PULL_TIMEOUT = 180
BUILD_TIMEOUT = 900
# Where a build container sees the host's CA bundle when pip on the host needs one (a
# TLS-intercepting proxy); passed to the Dockerfile's PIP_CERT build argument.
BUILD_CA_PATH = "/etc/ssl/host-pip-ca.crt"


def missing_tools() -> list[str]:
    """What the image tests need and this machine lacks."""
    tools = ("buildah", "podman", "runc", "debootstrap")
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if os.geteuid() != 0:
        missing.append("root")
    return missing


def run(command: list[str] | tuple[str, ...], timeout: float = 120,
        check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(list(command), capture_output=True, text=True, timeout=timeout,
                            check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(command)} exited {result.returncode}:\n"
                             f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    return result


def default_base_image() -> str:
    """The Dockerfile's pinned ``PYTHON_IMAGE``."""
    found = re.findall(r"^ARG PYTHON_IMAGE=(\S+)$", DOCKERFILE.read_text(), re.MULTILINE)
    assert len(found) == 1, found
    return found[0]


def image_exists(name: str) -> bool:
    return run([*BUILDAH, "inspect", "--type", "image", name], check=False).returncode == 0


def ensure_base_image() -> tuple[str, str]:
    """The base to build on and how it was obtained: the pinned image from its registry,
    or, when that cannot be pulled (no Docker Hub here), the Debian stand-in."""
    pinned = default_base_image()
    if image_exists(pinned):
        return pinned, "already present"
    pulled = run([*BUILDAH, "pull", "--quiet", f"docker.io/library/{pinned}"],
                 timeout=PULL_TIMEOUT, check=False)
    if pulled.returncode == 0:
        return pinned, "pulled"
    result = run([str(STANDIN_SCRIPT), STANDIN_NAME], timeout=BUILD_TIMEOUT)
    return STANDIN_NAME, f"{pinned} could not be pulled; {result.stdout.strip()}"


def host_pip_cert() -> str | None:
    """The CA bundle pip on this host is told to trust, if any."""
    cert = os.environ.get("PIP_CERT")
    if not cert:
        configured = run(["python", "-m", "pip", "config", "get", "global.cert"], check=False)
        cert = configured.stdout.strip() if configured.returncode == 0 else ""
    return cert if cert and Path(cert).is_file() else None


@dataclass(frozen=True)
class BuiltImage:
    name: str
    base: str
    base_origin: str
    build_seconds: float
    build_args: dict[str, str]

    def inspect(self) -> dict:
        result = run([*PODMAN, "image", "inspect", self.name])
        return json.loads(result.stdout)[0]

    def size_bytes(self) -> int:
        return int(self.inspect()["Size"])


def build(name: str, base: str, base_origin: str, build_args: dict[str, str]) -> BuiltImage:
    """``buildah bud`` of the repository's Dockerfile, in Docker format (OCI image configs
    have no HEALTHCHECK)."""
    command = [*BUILDAH, "bud", "--isolation", "chroot", "--network", "host", "--pull=never",
               "--format", "docker", "--layers=false", "-t", name]
    args = {"PYTHON_IMAGE": base, **build_args}
    cert = host_pip_cert()
    if cert:
        command += ["--volume", f"{cert}:{BUILD_CA_PATH}:ro"]
        args["PIP_CERT"] = BUILD_CA_PATH
    for key, value in args.items():
        command += ["--build-arg", f"{key}={value}"]
    started = time.monotonic()
    run([*command, str(REPO_ROOT)], timeout=BUILD_TIMEOUT)
    return BuiltImage(name, base, base_origin, time.monotonic() - started, args)


def ulimit_flags() -> list[str]:
    """Open files as the host allows; processes well below its cap (podman's default for
    a rootful container exceeds it and runc may not raise it)."""
    nofile = _soft_limit(resource.RLIMIT_NOFILE, 65536)
    nproc = _soft_limit(resource.RLIMIT_NPROC, 4096)
    return ["--ulimit", f"nofile={nofile}:{nofile}", "--ulimit", f"nproc={nproc}:{nproc}"]


def _soft_limit(which: int, ceiling: int) -> int:
    soft = resource.getrlimit(which)[0]
    return ceiling if soft == resource.RLIM_INFINITY else min(soft, ceiling)


def remove_image(name: str) -> None:
    run([*BUILDAH, "rmi", "--force", name], check=False)
