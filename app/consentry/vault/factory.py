"""Open the vault from validated settings; key rotation across the provider and the store."""

from __future__ import annotations

import os
from pathlib import Path

from ..config import VaultConfig
from ..errors import ConfigError, KeyUnavailable
from . import crypto
from .keys import PASSPHRASE_ENV, KeyFile, Passphrase, provider_from_config
from .store import Vault, default_home

NEW_PASSPHRASE_ENV = "CONSENTRY_NEW_PASSPHRASE"


def home_path(cfg: VaultConfig, override: Path | None) -> Path:
    return Path(override) if override else (cfg.home or default_home())


def key_file_path(cfg: VaultConfig, override: Path | None) -> Path:
    return cfg.key_file or home_path(cfg, override) / "master.key"


def open_vault(cfg: VaultConfig, home: Path | None = None, *, create: bool = False) -> Vault:
    """The configured store; only ``create`` (`keys init`, enrolment) may make a new one."""
    provider = provider_from_config(cfg.key_provider, key_file_path(cfg, home), cfg.credential)
    return Vault(home_path(cfg, home), provider, inactivity_days=cfg.inactivity_days, create=create)


def rotate_keys(vault: Vault, renew_transform: bool = False) -> int:
    """A new master key. Key file: the new key is staged beside the old one, the store is
    re-wrapped in one transaction, then the new file replaces the old (an interrupted rotation
    is finished on the next open). Passphrase: the new one comes from $CONSENTRY_NEW_PASSPHRASE."""
    provider = vault.provider
    salt = vault.salt
    if isinstance(provider, KeyFile):
        new_master = crypto.new_key()
        provider.stage(new_master)
        count = vault.rotate(new_master, renew_transform)
        provider.commit()
        return count
    if isinstance(provider, Passphrase):
        if not os.environ.get(NEW_PASSPHRASE_ENV):
            raise KeyUnavailable(f"set {NEW_PASSPHRASE_ENV} to the new passphrase (and {PASSPHRASE_ENV} to the old)")
        count = vault.rotate(Passphrase(os.environ[NEW_PASSPHRASE_ENV]).master_key(salt), renew_transform)
        return count
    raise ConfigError(f"the {provider.name} provider is rotated outside Consentry: re-encrypt a new credential "
                      "with systemd-creds, then run `consentry keys rotate` with a key file once")
