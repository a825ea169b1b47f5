"""What a command can fail with: one base class, and the exit code each failure ends with.

Every error osception raises for the user to act on derives from `OsceptionError`;
the command line turns it into its line(s) on stderr and its exit code in one place
(`cli._Group`), so a new error class needs no mapping of its own. The exit codes are
the README's table."""

from __future__ import annotations

FAILED = 1  # a run that failed or did not finish: a node's setup, a smoke check, the devcloud's processes
BAD_INPUT = 2  # bad input or state, said before anything is created or written


class OsceptionError(Exception):
    """A problem told in one line (its str) that says what to fix or where to look.
    The CLI shows each of `lines()` as `<label>: <line>` and exits with `exit_code`."""

    exit_code = BAD_INPUT
    label = "error"

    def lines(self) -> list[str]:
        return [str(self)]
