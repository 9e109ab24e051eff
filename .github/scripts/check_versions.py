#!/usr/bin/env python3
"""Check a release tag against every version the release publishes, before anything is pushed.

    python .github/scripts/check_versions.py v1.2.3 [--notes FILE]

The tag `vX.Y.Z` must equal, without its `v`: the package version (exporter/__init__.py),
the Dockerfile's VERSION default, the chart's `version` and `appVersion`, and a dated
CHANGELOG.md section `## [X.Y.Z] - YYYY-MM-DD`. Prints `version=X.Y.Z` (for
$GITHUB_OUTPUT) when all agree; otherwise lists every mismatch on stderr and exits 1.
`--notes FILE` writes that CHANGELOG section's body to FILE (the GitHub release notes).
Standard library only: it runs before any dependency is installed.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
# SemVer 2.0 core with optional pre-release; build metadata is not allowed in a chart tag.
TAG = re.compile(r"v(?P<version>(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
                 r"(-[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?)")


class VersionError(ValueError):
    """The tag or a version source is unusable."""


def version_from_tag(tag: str) -> str:
    tag = tag.removeprefix("refs/tags/")
    match = TAG.fullmatch(tag)
    if not match:
        raise VersionError(f"tag {tag!r} is not v<major>.<minor>.<patch>[-<pre-release>]")
    return match["version"]


def _one(pattern: str, text: str, what: str) -> str:
    found = re.findall(pattern, text, re.MULTILINE)
    if len(found) != 1:
        raise VersionError(f"{what}: expected one match of {pattern!r}, found {len(found)}")
    return found[0]


def declared_versions(root: Path) -> dict[str, str]:
    """Every version the release publishes, by where it is written."""
    init = (root / "exporter" / "__init__.py").read_text(encoding="utf-8")
    dockerfile = (root / "Dockerfile").read_text(encoding="utf-8")
    chart = (root / "helm" / "cryptomus-exporter" / "Chart.yaml").read_text(encoding="utf-8")
    quoted = r"""["']?([^"'\s#]+)["']?"""
    return {
        "exporter/__init__.py __version__": _one(
            r"""^__version__\s*=\s*["']([^"']+)["']""", init, "exporter/__init__.py"),
        "Dockerfile ARG VERSION": _one(r"^ARG VERSION=(\S+)$", dockerfile, "Dockerfile"),
        "Chart.yaml version": _one(rf"^version:\s*{quoted}", chart, "Chart.yaml version"),
        "Chart.yaml appVersion": _one(rf"^appVersion:\s*{quoted}", chart,
                                      "Chart.yaml appVersion"),
    }


def changelog_notes(changelog: str, version: str) -> str:
    """The body of the dated section for ``version``."""
    heading = re.compile(rf"^## \[{re.escape(version)}\] - \d{{4}}-\d{{2}}-\d{{2}}\s*$",
                         re.MULTILINE)
    match = heading.search(changelog)
    if not match:
        raise VersionError(f"CHANGELOG.md has no section '## [{version}] - YYYY-MM-DD'")
    following = re.compile(r"^## ", re.MULTILINE).search(changelog, match.end())
    body = changelog[match.end():following.start() if following else len(changelog)]
    # Link references (`[x.y.z]: https://...`) at the end belong to the whole file.
    body = re.sub(r"^\[[^\]]+\]: \S+\s*$", "", body, flags=re.MULTILINE)
    if not body.strip():
        raise VersionError(f"CHANGELOG.md section {version} is empty")
    return body.strip() + "\n"


def mismatches(tag: str, root: Path = REPO_ROOT) -> list[str]:
    """Every disagreement between ``tag`` and the repository, as readable lines."""
    try:
        version = version_from_tag(tag)
        declared = declared_versions(root)
    except (VersionError, OSError) as error:
        return [str(error)]
    problems = [f"{where} is {found!r}, the tag says {version!r}"
                for where, found in declared.items() if found != version]
    try:
        changelog_notes((root / "CHANGELOG.md").read_text(encoding="utf-8"), version)
    except (VersionError, OSError) as error:
        problems.append(str(error))
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tag", help="the release tag, e.g. v1.2.3 (or refs/tags/v1.2.3)")
    parser.add_argument("--notes", type=Path, help="write the CHANGELOG section here")
    parser.add_argument("--root", type=Path, default=REPO_ROOT, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    problems = mismatches(args.tag, args.root)
    if problems:
        for problem in problems:
            print(f"check_versions: {problem}", file=sys.stderr)
        return 1
    version = version_from_tag(args.tag)
    if args.notes:
        changelog = (args.root / "CHANGELOG.md").read_text(encoding="utf-8")
        args.notes.write_text(changelog_notes(changelog, version), encoding="utf-8")
    print(f"version={version}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
