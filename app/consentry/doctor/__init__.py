"""`consentry doctor`: one check per line with pass/warn/fail and a hint, so a field tester
can tell what is wrong without a developer beside them. The exit code is the number of
failures. Each check is a small function of the settings and a :class:`~.host.Host`, so the
staff page can run the same checks and tests can fake any machine."""

from .checks import Check, Doctor, report

__all__ = ["Check", "Doctor", "report"]
