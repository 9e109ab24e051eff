"""promtool for the examples' tests: the same fixture as the rule tests (skipped when
absent, except in CI)."""

from tests.rules.conftest import promtool  # noqa: F401  (re-exported fixture)
