"""The consent vault: encrypted templates, consent records, keys and the audit log."""

from .consent import ConsentRecord, ConsentText
from .factory import home_path, key_file_path, open_vault, rotate_keys
from .keys import KeyFile, Passphrase, SystemdCredential, provider_from_config
from .store import DeletionReceipt, SubjectInfo, TemplateSet, Vault, default_home

__all__ = ["ConsentRecord", "ConsentText", "DeletionReceipt", "KeyFile", "Passphrase", "SubjectInfo",
           "SystemdCredential", "TemplateSet", "Vault", "default_home", "home_path", "key_file_path",
           "open_vault", "provider_from_config", "rotate_keys"]
