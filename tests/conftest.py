"""Test-wide set-up: the exporter runs under gevent, so do the tests."""

from gevent import monkey

monkey.patch_all()
