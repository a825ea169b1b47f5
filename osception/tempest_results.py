"""Tempest's results as osception reads them: a run's JUnit XML (subunit2junitxml's)
folded into one outcome per test, the one-line summary, and the comparison of two runs
(before/after a patch, upstream against downstream).

Pure: files in, data out; `osception tempest` (tempest.py) prints it.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

OUTCOMES = ("passed", "failed", "skipped")


@dataclass(frozen=True)
class Summary:
    ran: int
    passed: int
    failed: int
    skipped: int

    def line(self) -> str:
        return f"ran {self.ran}: {self.passed} passed, {self.failed} failed, {self.skipped} skipped"


def _test_id(case: ET.Element) -> str:
    """Tempest's test id without its tags (`[id-...,smoke]`): one name across runs."""
    name = case.get("name", "").split("[", 1)[0]
    cls = case.get("classname", "")
    return f"{cls}.{name}" if cls else name


def outcomes(junit: Path) -> dict[str, str]:
    """{test id: passed | failed | skipped}; an error counts as failed. A setUpClass
    failure is its own test case (subunit names it after the class)."""
    try:
        root = ET.parse(junit).getroot()
    except (OSError, ET.ParseError) as e:
        raise ValueError(f"{junit}: not a JUnit XML report ({e})") from None
    out: dict[str, str] = {}
    for case in root.iter("testcase"):
        if case.find("failure") is not None or case.find("error") is not None:
            outcome = "failed"
        elif case.find("skipped") is not None:
            outcome = "skipped"
        else:
            outcome = "passed"
        out[_test_id(case)] = outcome
    return out


def summarize(results: dict[str, str]) -> Summary:
    counts = {o: sum(1 for v in results.values() if v == o) for o in OUTCOMES}
    return Summary(len(results), counts["passed"], counts["failed"], counts["skipped"])


def group_of(test: str, depth: int = 3) -> str:
    """The test's group: the package of its module (the parts before the first `test_`
    one), at most DEPTH parts: tempest.api.compute (of tempest.api.compute.servers),
    tempest.scenario. A class fixture's failure (`setUpClass (tempest.api....)`) is in
    the group of its class."""
    if test.endswith(")") and " (" in test:
        test = test[test.index(" (") + 2:-1]
    parts = test.split(".")
    package = next((parts[:i] for i, part in enumerate(parts) if part.startswith("test_")), parts)
    return ".".join(package[:depth]) or test


def by_group(results: dict[str, str], depth: int = 3) -> dict[str, Summary]:
    """A summary per group (group_of), in the groups' order."""
    grouped: dict[str, dict[str, str]] = {}
    for test, outcome in results.items():
        grouped.setdefault(group_of(test, depth), {})[test] = outcome
    return {group: summarize(grouped[group]) for group in sorted(grouped)}


def skip_reasons(junit: Path) -> dict[str, list[str]]:
    """{reason Tempest gave: the tests it skipped}, the most frequent reason first."""
    reasons: dict[str, list[str]] = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        skipped = case.find("skipped")
        if skipped is not None:
            reason = (skipped.text or skipped.get("message") or "").strip() or "(no reason given)"
            reasons.setdefault(reason, []).append(_test_id(case))
    return dict(sorted(reasons.items(), key=lambda item: (-len(item[1]), item[0])))


def compare(a: dict[str, str], b: dict[str, str]) -> list[tuple[str, str, str]]:
    """(test, outcome in A, outcome in B) for every test whose outcome differs, a test
    absent from one run being `absent` there; sorted by test id."""
    return [(t, a.get(t, "absent"), b.get(t, "absent"))
            for t in sorted(set(a) | set(b)) if a.get(t) != b.get(t)]
