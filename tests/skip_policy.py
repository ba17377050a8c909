"""Under CI=true a skipped test fails the run: there a skip means a part `make test` installs
is missing or a test turned itself off, and either would let a red suite look green.

A pytest plugin, installed by tests/conftest.py, the rootdir conftest of every run (the main
suite, tests/vllm_plugin and tests/cluster alike); `pytest -p tests.skip_policy` loads it
alone. On a developer machine skips stay skips, and `require()` (tests/helpers.py) says
which part is missing.
"""

from __future__ import annotations

import pytest

from tests.helpers import in_ci

NAME = "openai-ocr-skip-policy"


class SkipPolicy:
    """Collects every skip (at collection, set-up or call; an xfail is reported as one too)
    and, under CI=true, fails a run that would otherwise pass."""

    def __init__(self) -> None:
        self.skips: list[str] = []

    def _record(self, report: pytest.CollectReport | pytest.TestReport) -> None:
        if report.skipped:
            reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
            self.skips.append(f"{report.nodeid or report.fspath}: {reason}")

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        self._record(report)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self._record(report)

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if in_ci() and self.skips and session.exitstatus in (pytest.ExitCode.OK,
                                                             pytest.ExitCode.NO_TESTS_COLLECTED):
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if in_ci() and self.skips:
            terminalreporter.section(f"{len(self.skips)} skip(s): a skip fails the run under CI=true",
                                     sep="=", red=True, bold=True)
            for line in self.skips:
                terminalreporter.line(line)


def install(config: pytest.Config) -> None:
    if not config.pluginmanager.has_plugin(NAME):
        config.pluginmanager.register(SkipPolicy(), NAME)


pytest_configure = install
"""When loaded with `-p tests.skip_policy`."""
