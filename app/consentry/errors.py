"""One exception root for the whole appliance.

Leaves also derive from the builtin that describes them, so callers may catch either
(``except ConfigError`` or ``except ValueError``). Messages name the file or id involved
and say what to do; they never carry keys, names or face data.
"""

from __future__ import annotations


class ConsentryError(Exception):
    """Root of every error Consentry raises on purpose."""


class ConfigError(ConsentryError, ValueError):
    """A configuration value or command-line option is invalid."""


class ModelError(ConsentryError, RuntimeError):
    """A model could not be found, read or run."""


class ModelIntegrityError(ModelError):
    """A model file's sha256 does not match models/manifest.json."""

    def __init__(self, path: str, expected: str, actual: str) -> None:
        super().__init__(
            f"model file {path} failed its integrity check: manifest sha256 {expected}, "
            f"file sha256 {actual}. Restore the file from the release or run `make models`."
        )
        self.path = path
        self.expected = expected
        self.actual = actual


class RuntimeUnavailable(ModelError):
    """No TFLite runtime could be imported."""


class ImageError(ConsentryError, ValueError):
    """An image could not be read or has an unusable shape or type."""


class NoFaceError(ConsentryError, LookupError):
    """An operation needed a face and the image had none."""


class CameraError(ConsentryError, RuntimeError):
    """A frame source failed (unplugged, stalled, unreadable)."""


class VaultError(ConsentryError, RuntimeError):
    """The template store could not be opened, read or written."""


class VaultMissing(VaultError):
    """No template store exists where one was expected (only `keys init` and enrolment create one)."""


class KeyUnavailable(VaultError):
    """The master key could not be obtained (missing file, unsafe permissions, no passphrase)."""


class WrongKey(VaultError):
    """The master key does not open this vault."""


class TemplateIntegrityError(VaultError):
    """A stored blob failed authentication: tampered, corrupted, or copied from another row."""


class AuditChainBroken(VaultError):
    """The audit log does not end at its recorded head (its tail was cut, or the head or the last
    entry was edited): nothing more is appended to it, so the break cannot be papered over."""


class ConsentMissing(ConsentryError, PermissionError):
    """Enrolment without a complete consent record is refused."""


class SubjectNotFound(ConsentryError, LookupError):
    """No subject with that pseudonymous id exists (never enrolled, revoked, or purged)."""


class EvaluationError(ConsentryError, ValueError):
    """An evaluation cannot be computed from the data given (too few readable faces or pairs)."""


class CardInUse(VaultError, ValueError):
    """A panel credential (facility and card number) is already registered to another subject."""
