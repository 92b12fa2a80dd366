"""The audit signing key: configured as base64 or a file, or generated once; heads signed
with it verify with its public key alone, and with no other; after a rotation, with the
retired key's public key too."""

from __future__ import annotations

import base64
from dataclasses import replace
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from ledger_core.audit_heads import SignedHead, TrustedKeys, key_id, sign_head
from runtime.audit_keys import (
    encode_private,
    encode_public,
    public_key,
    signing_key,
    trusted_keys,
)
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


def test_a_head_names_its_key_and_only_trusted_keys_vouch_for_it(tmp_path: Path) -> None:
    old, new, stranger = (Ed25519PrivateKey.generate() for _ in range(3))
    trusted = TrustedKeys.of([new.public_key(), old.public_key()])
    by_old = sign_head(old, "db", "system", 7, "ab" * 32, "2026-12-06T21:00:00+00:00")
    by_new = sign_head(new, "db", "system", 8, "cd" * 32, "2026-12-06T21:01:00+00:00")
    by_stranger = sign_head(stranger, "db", "system", 8, "cd" * 32, by_new.sealed_at)

    assert by_old.key_id == key_id(old.public_key()) != by_new.key_id
    assert trusted.signer(by_old) == by_old.key_id
    assert trusted.signer(by_new) == by_new.key_id
    assert trusted.signer(by_stranger) is None
    # a head published before heads named their key is tried with every trusted key
    assert trusted.signer(replace(by_old, key_id="")) == by_old.key_id
    # naming a trusted key does not lend a stranger's signature its trust
    assert trusted.signer(replace(by_stranger, key_id=by_new.key_id)) is None
    assert SignedHead.from_fields(by_old.fields()) == by_old


def test_retired_keys_are_trusted_beside_the_signing_key(tmp_path: Path) -> None:
    current, retired_b64, retired_pem = (Ed25519PrivateKey.generate() for _ in range(3))
    pem = tmp_path / "retired.pem"
    pem.write_bytes(
        retired_pem.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    )
    keys = trusted_keys(
        settings(
            tmp_path,
            VAULTCRAFT_AUDIT_SIGNING_KEY=encode_private(current),
            VAULTCRAFT_AUDIT_RETIRED_KEYS=f" {encode_public(retired_b64.public_key())} , {pem}",
        )
    )
    assert [encode_public(k) for k in keys] == [
        encode_public(k.public_key()) for k in (current, retired_b64, retired_pem)
    ]
    assert [encode_public(k) for k in trusted_keys(settings(tmp_path))] == [
        encode_public(signing_key(settings(tmp_path)).public_key())
    ]


def test_a_malformed_retired_key_is_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="VAULTCRAFT_AUDIT_RETIRED_KEYS must hold 32"):
        trusted_keys(settings(tmp_path, VAULTCRAFT_AUDIT_RETIRED_KEYS="c2hvcnQ="))
