"""The associated data that binds every sealed blob to its row."""

from __future__ import annotations

# The version of the blob formats, bound into every blob's associated data. Independent of the
# database schema, so a migration that adds a column never invalidates stored blobs.
BLOB_VERSION = 1


def aad_key(subject: str) -> str:
    return f"consentry:data-key:v{BLOB_VERSION}:{subject}"


def aad_name(subject: str) -> str:
    return f"consentry:name:v{BLOB_VERSION}:{subject}"


def aad_template(subject: str, template: str, model: str) -> str:
    return f"consentry:template:v{BLOB_VERSION}:{subject}:{template}:{model}"


def aad_door_template(subject: str, template: str, model: str) -> str:
    """A door template's own prefix: moved into ``templates`` (or back) it does not open."""
    return f"consentry:door-template:v{BLOB_VERSION}:{subject}:{template}:{model}"
