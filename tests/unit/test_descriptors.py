"""Descriptor headroom: the budget arithmetic, and the limit raised for real in a child."""

from __future__ import annotations

import resource
import subprocess
import sys

import pytest

from exporter.descriptors import (
    ACCEPT_HEADROOM,
    EXCHANGE_RESERVE,
    MIN_HTTP_CONNECTIONS,
    UNLIMITED_TARGET,
    http_connection_limit,
    plan,
    target_soft_limit,
)

INFINITY = resource.RLIM_INFINITY


@pytest.mark.parametrize(("soft", "hard", "target"), [
    (512, 512, 512), (1024, 524288, 524288), (256, INFINITY, UNLIMITED_TARGET),
    (UNLIMITED_TARGET * 2, INFINITY, UNLIMITED_TARGET * 2), (INFINITY, INFINITY, INFINITY)])
def test_the_soft_limit_goes_up_to_the_hard_one(soft, hard, target):
    assert target_soft_limit(soft, hard) == target


def test_the_http_side_gets_what_the_exchange_reserve_leaves():
    budget = plan(512, in_use=20)
    assert budget.http_connections == 512 - 20 - EXCHANGE_RESERVE - ACCEPT_HEADROOM
    assert not budget.starved
    assert http_connection_limit(256, budget) == 256
    assert http_connection_limit(1000, budget) == budget.http_connections
    assert http_connection_limit(0, budget) == budget.http_connections


def test_a_tiny_limit_still_serves_a_few_and_says_it_is_starved():
    budget = plan(64, in_use=20)
    assert budget.starved
    assert budget.http_connections == MIN_HTTP_CONNECTIONS


def test_start_up_raises_the_soft_limit_and_counts_what_is_open():
    """In a child process (the limit is per process): soft 256, hard 1024."""
    script = (
        "import resource\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (256, 1024))\n"
        "from exporter.descriptors import apply_descriptor_budget\n"
        "budget = apply_descriptor_budget()\n"
        "print(resource.getrlimit(resource.RLIMIT_NOFILE)[0], budget.soft_limit,"
        " budget.in_use, budget.http_connections)\n"
    )
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != INFINITY and hard < 1024:
        pytest.skip(f"hard open-files limit {hard} < 1024")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=30, check=True)
    soft_now, soft_seen, in_use, http = map(int, result.stdout.split())
    assert soft_now == soft_seen == 1024
    assert 3 <= in_use < 64
    assert http == 1024 - in_use - EXCHANGE_RESERVE - ACCEPT_HEADROOM
