"""Audit chains anchored outside the database: signed heads on a Redis stream.

The relay seals records and publishes each chain's new head, signed; `vaultcraft verify`
checks the chains against them. Rewriting records and re-sealing the chain (so every
link checks out again) is caught, and so is a head signed by another key. A key rotated
out keeps vouching for the heads it signed while it is listed as retired.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import redis
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine, create_engine, text

from ledger_core.persistence.audit.chain import chain_head, seal_waiting
from runtime.audit_keys import encode_private, encode_public
from tests.support.databases import fresh_database
from tests.support.ledger import create_book
from tests.support.stack import Stack
from workers.audit_heads import HEAD_STREAM, publish_heads, sign_heads


def vaultcraft_verify(
    url: str, redis_url: str, data_dir: Path, **keys: str
) -> subprocess.CompletedProcess[str]:
    """`vaultcraft verify`, with `keys` as extra VAULTCRAFT_AUDIT_* settings."""
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "REDIS_URL": redis_url,
        "VAULTCRAFT_DATA_DIR": str(data_dir),
        "VAULTCRAFT_LOG_FORMAT": "json",
        **{f"VAULTCRAFT_AUDIT_{name.upper()}": value for name, value in keys.items()},
    }
    argv = [sys.executable, "-m", "vaultcraft.cli", "verify"]
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)


def record_actions(engine: Engine, organization_id: object, actions: list[str]) -> None:
    with engine.begin() as conn:
        for action in actions:
            conn.execute(
                text(
                    "INSERT INTO audit_logs (organization_id, action, resource_type, details)"
                    " VALUES (:o, :a, 'wallet', '{}')"
                ),
                {"o": organization_id, "a": action},
            )


def wait_for_head(client: redis.Redis, database: str, chain: str, seq: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for _, fields in client.xrange(HEAD_STREAM):
            if (
                fields[b"database"].decode() == database
                and fields[b"chain"].decode() == chain
                and int(fields[b"chain_seq"]) == seq
            ):
                return
        time.sleep(0.2)
    raise TimeoutError(f"no head {seq} of chain {chain} was published")


def rewrite_and_reseal(engine: Engine, organization_id: object) -> None:
    """What an intruder with the owner's rights does: edit a record, then re-seal every
    chain with the product's own sealer, so that every link is consistent again."""
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE audit_logs DISABLE TRIGGER audit_logs_append_only"))
        conn.execute(text("ALTER TABLE audit_seals DISABLE TRIGGER audit_seals_append_only"))
        conn.execute(
            text(
                "UPDATE audit_logs SET action = 'nothing.happened' WHERE id = ("
                " SELECT record_id FROM audit_seals WHERE organization_id = :o AND chain_seq = 2)"
            ),
            {"o": organization_id},
        )
        conn.execute(text("DELETE FROM audit_seals"))
        conn.execute(text("UPDATE audit_seal_cursor SET txid = '0', record_id = 0"))
        conn.execute(text("ALTER TABLE audit_seals ENABLE TRIGGER audit_seals_append_only"))
        conn.execute(text("ALTER TABLE audit_logs ENABLE TRIGGER audit_logs_append_only"))
    with engine.begin() as conn:
        resealed = seal_waiting(conn)
    assert resealed is not None and organization_id in resealed.grown
    with engine.connect() as conn:
        assert chain_head(conn, organization_id)[0] == 3  # type: ignore[arg-type]


def test_a_rewritten_and_resealed_chain_is_caught_by_its_signed_head(
    service_urls: tuple[str, str], redis_url: str, tmp_path: Path
) -> None:
    client = redis.Redis.from_url(redis_url)
    with fresh_database(service_urls[0], "vaultcraft_anchor") as url:
        owner = create_engine(url)
        try:
            org = create_book(owner, 1).organization_id
            record_actions(owner, org, ["wallet.created", "wallet.locked", "wallet.unlocked"])
            database = url.rsplit("/", 1)[1].split("?")[0]
            with Stack(url, redis_url, tmp_path, processes=("relay",)):
                wait_for_head(client, database, str(org), 3)

            clean = vaultcraft_verify(url, redis_url, tmp_path)
            assert clean.returncode == 0, clean.stdout + clean.stderr
            assert "Audit chains: intact; 1 match their signed heads." in clean.stdout

            rewrite_and_reseal(owner, org)
            rewritten = vaultcraft_verify(url, redis_url, tmp_path)
            assert rewritten.returncode == 1, rewritten.stdout + rewritten.stderr
            assert f"head_mismatch: audit chain {org} at chain_seq 3" in rewritten.stdout

            # The intruder signs the rewritten head with a key of their own: refused.
            with owner.connect() as conn:
                seq, hash_ = chain_head(conn, org)
            forged = sign_heads(Ed25519PrivateKey.generate(), database, [(org, seq, hash_)])
            publish_heads(client, forged)
            refused = vaultcraft_verify(url, redis_url, tmp_path)
            assert refused.returncode == 1
            assert f"forged_head: audit chain {org} at chain_seq 3" in refused.stdout
            assert f"head_mismatch: audit chain {org} at chain_seq 3" in refused.stdout
        finally:
            owner.dispose()


def test_heads_signed_before_a_key_rotation_verify_while_the_old_key_is_retired(
    service_urls: tuple[str, str], redis_url: str, tmp_path: Path
) -> None:
    client = redis.Redis.from_url(redis_url)
    old, new = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    old_public, new_public = encode_public(old.public_key()), encode_public(new.public_key())
    with fresh_database(service_urls[0], "vaultcraft_rotate") as url:
        owner = create_engine(url)
        try:
            # Given a chain sealed under the old key, then sealed further under the new one
            org = create_book(owner, 1).organization_id
            database = url.rsplit("/", 1)[1].split("?")[0]
            for seq, (key, action) in enumerate(
                [(old, "wallet.created"), (new, "wallet.locked")], start=1
            ):
                record_actions(owner, org, [action])
                env = {"VAULTCRAFT_AUDIT_SIGNING_KEY": encode_private(key)}
                with Stack(
                    url, redis_url, tmp_path / str(seq), processes=("relay",), extra_env=env
                ):
                    wait_for_head(client, database, str(org), seq)

            # When verify trusts the new key and the retired old one, then the chain is intact
            new_key = encode_private(new)
            rotated = vaultcraft_verify(
                url, redis_url, tmp_path, signing_key=new_key, retired_keys=old_public
            )
            assert rotated.returncode == 0, rotated.stdout + rotated.stderr
            assert "Audit chains: intact; 1 match their signed heads." in rotated.stdout
            public_only = vaultcraft_verify(
                url,
                redis_url,
                tmp_path / "verifier",
                public_key=new_public,
                retired_keys=old_public,
            )
            assert public_only.returncode == 0, public_only.stdout + public_only.stderr

            # and once the old key is no longer listed, what it signed is disowned
            disowned = vaultcraft_verify(url, redis_url, tmp_path, signing_key=new_key)
            assert disowned.returncode == 1
            assert (
                f"forged_head: audit chain {org} at chain_seq 1: signed by no key we trust"
                in disowned.stdout
            )
            assert "chain_seq 2" not in disowned.stdout
        finally:
            owner.dispose()
