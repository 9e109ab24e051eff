"""Test-wide set-up: the exporter runs under gevent, so do the tests."""

from gevent import monkey

monkey.patch_all()

from pathlib import Path  # noqa: E402 (after the monkey-patching)

import pytest  # noqa: E402

from tests.support import make_self_signed  # noqa: E402


@pytest.fixture
def tls_files(tmp_path: Path) -> tuple[Path, Path]:
    """A fresh self-signed certificate for localhost and 127.0.0.1: (cert, key) PEM files
    (see ``tests.support.make_self_signed``)."""
    return make_self_signed(tmp_path)
