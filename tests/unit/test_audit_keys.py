"""The audit signing key: configured as base64 or a file, or generated once; heads signed
with it verify with its public key alone, and with no other."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from ledger_core.audit_heads import sign_head
from runtime.audit_keys import encode_private, public_key, signing_key
from runtime.settings import Settings


def settings(tmp_path: Path, **env: str) -> Settings:
    return Settings.from_env({"VAULTCRAFT_DATA_DIR": str(tmp_path), **env})


def test_a_generated_key_is_kept_in_the_data_dir(tmp_path: Path) -> None:
    first = encode_private(signing_key(settings(tmp_path)))
    assert encode_private(signing_key(settings(tmp_path))) == first
    assert (tmp_path / "audit_signing_key").read_text().strip() == first


def test_base64_and_pem_file_name_the_same_key(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    pem = tmp_path / "audit.pem"
    pem.write_bytes(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    from_pem = signing_key(settings(tmp_path, VAULTCRAFT_AUDIT_SIGNING_KEY=str(pem)))
    from_b64 = signing_key(settings(tmp_path, VAULTCRAFT_AUDIT_SIGNING_KEY=encode_private(key)))
    assert encode_private(from_pem) == encode_private(from_b64) == encode_private(key)


def test_a_head_verifies_with_the_public_key_only_and_not_with_another(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    raw_public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    verifier = public_key(
        settings(tmp_path, VAULTCRAFT_AUDIT_PUBLIC_KEY=base64.b64encode(raw_public).decode())
    )
    head = sign_head(key, "db", "system", 7, "ab" * 32, "2026-12-04T18:00:00+00:00")
    assert head.signed_by(verifier)
    forged = sign_head(Ed25519PrivateKey.generate(), "db", "system", 7, "ab" * 32, head.sealed_at)
    assert not forged.signed_by(verifier)
    moved = sign_head(key, "other-db", "system", 7, "ab" * 32, head.sealed_at)
    assert not type(head)(**{**moved.__dict__, "signature": head.signature}).signed_by(verifier)


def test_a_malformed_key_is_refused_clearly(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="32 raw key bytes"):
        signing_key(settings(tmp_path, VAULTCRAFT_AUDIT_SIGNING_KEY="c2hvcnQ="))
