"""The alert and recording rules: promtool checks and unit tests, and the conventions that
make every alert actionable (labels, annotations, runbook sections, one job selector)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import yaml

from tests.rules.dashboard_queries import (
    REPO,
    RULES_DIR,
    iter_panels,
    iter_rule_exprs,
    iter_rules,
    load_dashboards,
    main_rules_path,
    rule_paths,
)
from tests.rules.promql import METRIC_PREFIX, selectors
from tests.rules.promtool_runner import run_promtool

JOB_SELECTOR = ("job", "=", "cryptomus-exporter")
RUNBOOK = RULES_DIR / "RUNBOOK.md"
RUNBOOK_BASE = (
    "https://github.com/cryptomus-exporter/cryptomus-exporter/blob/main/alerts/RUNBOOK.md"
)
SEVERITIES = {"critical", "warning", "info"}
UNIT_TEST_PATHS = sorted((RULES_DIR / "tests").glob("*.test.yml"))
# Replacement expressions for the mutation tests.
NEVER_FIRES = "vector(1) unless vector(1)"
ALWAYS_FIRES = "vector(1)"


def alerts() -> list[dict]:
    return [rule for rule in iter_rules(main_rules_path()) if "alert" in rule]


def alert_names() -> list[str]:
    return [rule["alert"] for rule in alerts()]


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a markdown heading."""
    anchor = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return anchor.replace(" ", "-")


def runbook_anchors() -> set[str]:
    headings = re.findall(r"^#{1,6}\s+(.+?)\s*$", RUNBOOK.read_text(encoding="utf-8"), re.M)
    return {github_anchor(heading) for heading in headings}


def load_yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


# --- promtool ------------------------------------------------------------------------------


@pytest.mark.parametrize("path", sorted(RULES_DIR.rglob("*.yml")), ids=lambda p: p.name)
def test_yaml_parses(path):
    document = load_yaml(path)
    assert document.get("groups") or document.get("tests"), f"{path.name} has no rules or tests"


@pytest.mark.prometheus
def test_promtool_check_rules(promtool):
    result = run_promtool(promtool, "check", "rules", *rule_paths())
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(rule_paths())


@pytest.mark.prometheus
def test_promtool_unit_tests_pass(promtool):
    assert UNIT_TEST_PATHS
    result = run_promtool(promtool, "test", "rules", *UNIT_TEST_PATHS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(UNIT_TEST_PATHS)


def _unit_test_cases() -> list[tuple[str, bool]]:
    """(alertname, expects it to fire) for every alert_rule_test entry."""
    return [
        (case["alertname"], bool(case.get("exp_alerts")))
        for path in UNIT_TEST_PATHS
        for group in load_yaml(path)["tests"]
        for case in group.get("alert_rule_test", [])
    ]


@pytest.mark.parametrize("alert", alert_names())
def test_every_alert_has_firing_and_silent_unit_tests(alert):
    expectations = {fires for name, fires in _unit_test_cases() if name == alert}
    assert expectations == {True, False}, f"{alert}: needs a case that fires and one that must not"


def test_unit_tests_only_name_existing_alerts():
    assert {name for name, _ in _unit_test_cases()} <= set(alert_names())


def _copy_alerts_with(tmp_path: Path, alert: str, expr: str, *, keep_for: bool) -> Path:
    """alerts/ copied to tmp_path with one alert's expression replaced; returns the copy."""
    copy = tmp_path / "alerts"
    shutil.copytree(RULES_DIR, copy, ignore=shutil.ignore_patterns("*.md"))
    rules = load_yaml(main_rules_path())
    for group in rules["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") == alert:
                rule["expr"] = expr
                if not keep_for:
                    rule.pop("for", None)
    (copy / main_rules_path().name).write_text(yaml.safe_dump(rules), encoding="utf-8")
    return copy


def _unit_tests_for(alert: str, copy: Path, *, silent_only: bool) -> list[Path]:
    """The unit test files that test ``alert``, reduced to its cases (only its must-not-fire
    cases when ``silent_only``), written into the copy."""
    written = []
    for path in UNIT_TEST_PATHS:
        suite = load_yaml(path)
        groups = []
        for group in suite["tests"]:
            cases = [case for case in group.get("alert_rule_test", [])
                     if case["alertname"] == alert
                     and not (silent_only and case.get("exp_alerts"))]
            if cases:
                groups.append({**group, "alert_rule_test": cases})
                groups[-1].pop("promql_expr_test", None)
        if groups:
            target = copy / "tests" / path.name
            target.write_text(yaml.safe_dump({**suite, "tests": groups}), encoding="utf-8")
            written.append(target)
    return written


@pytest.mark.prometheus
@pytest.mark.parametrize("alert", alert_names())
def test_unit_tests_fail_when_the_alert_never_fires(promtool, tmp_path, alert):
    copy = _copy_alerts_with(tmp_path, alert, NEVER_FIRES, keep_for=True)
    result = run_promtool(promtool, "test", "rules", *_unit_tests_for(alert, copy,
                                                                      silent_only=False))
    assert result.returncode != 0, f"no unit test notices that {alert} never fires"


@pytest.mark.prometheus
@pytest.mark.parametrize("alert", alert_names())
def test_unit_tests_fail_when_the_alert_always_fires(promtool, tmp_path, alert):
    original = _copy_alerts_with(tmp_path / "original", alert,
                                 next(r["expr"] for r in alerts() if r["alert"] == alert),
                                 keep_for=True)
    silent_cases = _unit_tests_for(alert, original, silent_only=True)
    passing = run_promtool(promtool, "test", "rules", *silent_cases)
    assert passing.returncode == 0, passing.stdout + passing.stderr

    mutated = _copy_alerts_with(tmp_path / "mutated", alert, ALWAYS_FIRES, keep_for=False)
    result = run_promtool(promtool, "test", "rules",
                          *_unit_tests_for(alert, mutated, silent_only=True))
    assert result.returncode != 0, f"no must-not-fire case notices that {alert} always fires"


# --- conventions ---------------------------------------------------------------------------


@pytest.mark.parametrize("rule", alerts(), ids=alert_names())
def test_alert_has_severity_and_annotations(rule):
    assert rule["labels"]["severity"] in SEVERITIES
    for key in ("summary", "description", "runbook_url"):
        assert rule["annotations"].get(key, "").strip(), f"{rule['alert']}: no {key}"
    assert "{{ $labels." in rule["annotations"]["description"], (
        f"{rule['alert']}: the description should name the instance/market/reason")


@pytest.mark.parametrize("rule", alerts(), ids=alert_names())
def test_runbook_url_points_to_its_section(rule):
    url = rule["annotations"]["runbook_url"]
    base, _, anchor = url.partition("#")
    assert base == RUNBOOK_BASE
    assert anchor == rule["alert"].lower()
    assert anchor in runbook_anchors(), f"RUNBOOK.md has no heading for #{anchor}"


def test_runbook_has_no_section_for_a_missing_alert():
    sections = set(re.findall(r"^## (Cryptomus\w+)\s*$", RUNBOOK.read_text(encoding="utf-8"),
                              re.M))
    assert sections == set(alert_names())


def test_runbook_internal_links_resolve():
    text = RUNBOOK.read_text(encoding="utf-8")
    for anchor in re.findall(r"\]\(#([\w-]+)\)", text):
        assert anchor in runbook_anchors(), f"broken link #{anchor}"
    for relative in re.findall(r"\]\((?!https?:|#)([^)]+)\)", text):
        assert (RULES_DIR / relative).exists(), f"broken link {relative}"


@pytest.mark.parametrize("path", rule_paths(), ids=lambda p: p.name)
def test_every_selector_uses_the_job_selector(path):
    for name, expr in iter_rule_exprs(path):
        for selector in selectors(expr):
            if selector.name == "up" or selector.name.startswith(METRIC_PREFIX):
                matcher = selector.matcher("job")
                assert matcher is not None, f"{name}: {selector.name} has no job matcher"
                assert (matcher.label, matcher.op, matcher.value) == JOB_SELECTOR, name


_LABEL_LIST = re.compile(r"\b(on|by|ignoring|without)\s*\(([^)]*)\)")
CLUSTER_TESTS = RULES_DIR / "tests" / "cluster-label.test.yml"


@pytest.mark.parametrize("path", rule_paths(), ids=lambda p: p.name)
def test_joins_and_aggregations_keep_the_optional_cluster_label(path):
    """A label list naming `instance` also names `cluster`: one Prometheus holding several
    clusters must not match or sum series across them (absent, cluster is "")."""
    for name, expr in iter_rule_exprs(path):
        for keyword, labels in _LABEL_LIST.findall(expr):
            names = {label.strip() for label in labels.split(",")}
            if "instance" in names:
                assert "cluster" in names, f"{name}: {keyword} ({labels}) drops the cluster label"


@pytest.mark.prometheus
def test_cluster_unit_tests_fail_without_the_cluster_label(promtool, tmp_path):
    copy = tmp_path / "alerts"
    (copy / "tests").mkdir(parents=True)
    text = main_rules_path().read_text(encoding="utf-8")
    assert "(cluster, " in text
    (copy / main_rules_path().name).write_text(text.replace("(cluster, ", "("), encoding="utf-8")
    shutil.copy(CLUSTER_TESTS, copy / "tests")
    result = run_promtool(promtool, "test", "rules", copy / "tests" / CLUSTER_TESTS.name)
    assert result.returncode != 0
    for case in ("its own cluster only", "subscriptions and connection of its own cluster",
                 "summed per cluster"):
        assert case in result.stdout + result.stderr, case


def _header_table(path: Path) -> dict[str, tuple[str, str]]:
    """alert -> (severity, for) from the comment table at the top of the rule file."""
    rows = re.findall(r"^# \| (Cryptomus\w+)\s*\| (\w+)\s*\|[^|]*\| (\w+)\s*\|$",
                      path.read_text(encoding="utf-8"), re.M)
    return {alert: (severity, duration) for alert, severity, duration in rows}


def test_header_table_matches_the_rules():
    table = _header_table(main_rules_path())
    actual = {rule["alert"]: (rule["labels"]["severity"], rule.get("for", "0m"))
              for rule in alerts()}
    assert table == actual


def test_alert_names_are_unique():
    assert len(alert_names()) == len(set(alert_names()))


def test_iter_rule_exprs_lists_every_rule():
    names = [name for name, _ in iter_rule_exprs(main_rules_path())]
    text = main_rules_path().read_text(encoding="utf-8")
    assert names == re.findall(r"^\s+- (?:alert|record): (\S+)$", text, re.M)
    assert iter_rule_exprs(text) == iter_rule_exprs(main_rules_path())


def test_runbook_panel_references_exist():
    """Italic phrases in the runbook name dashboard panels (or Prometheus UI pages)."""
    prometheus_ui = {"Status → Targets", "Service Discovery"}
    text = re.sub(r"`[^`]*`", "", RUNBOOK.read_text(encoding="utf-8"))
    referenced = {" ".join(phrase.split())
                  for phrase in re.findall(r"(?<!\*)\*([^*]+)\*(?!\*)", text)}
    titles = {panel["title"] for dashboard in load_dashboards().values()
              for panel in iter_panels(dashboard)}
    assert len(referenced) > 10
    assert referenced - prometheus_ui <= titles


def test_runbook_log_lines_exist_in_the_exporter():
    """Every quoted log line (``log line `...` ``) is still written by the exporter: each
    literal fragment between ``<placeholders>`` occurs in its source."""
    source = "\n".join(path.read_text(encoding="utf-8")
                       for path in sorted((REPO / "exporter").rglob("*.py")))
    quotes = re.findall(r"log line\s+`([^`]+)`", RUNBOOK.read_text(encoding="utf-8"))
    assert len(quotes) > 10
    for quote in quotes:
        for fragment in re.split(r"<[^>]+>", quote):
            if len(fragment.strip()) >= 3:
                assert fragment in source, f"log line {quote!r}: {fragment!r} not in exporter/"
