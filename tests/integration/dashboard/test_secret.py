"""The server secret that signs dashboard links: configured, or made once and kept."""

from __future__ import annotations

from pathlib import Path

import pytest
from itsdangerous import BadSignature

from payments.config import load_config
from payments.dashboard import service


def test_a_secret_is_made_once_under_var_and_kept(tmp_path: Path) -> None:
    config = load_config({"CREATORPAY_VAR_DIR": str(tmp_path / "var")})
    first = service.server_secret(config)
    path = tmp_path / "var" / "secret_key"
    assert path.read_text().strip() == first and len(first) >= 48
    assert path.stat().st_mode & 0o777 == 0o600
    service._secret_file.cache_clear()
    assert service.server_secret(config) == first  # read back, not made again
    assert [p.name for p in path.parent.iterdir()] == ["secret_key"]


def test_the_configured_secret_signs_and_another_one_does_not_verify(tmp_path: Path) -> None:
    a = load_config({"CREATORPAY_SECRET_KEY": "a" * 32, "CREATORPAY_VAR_DIR": str(tmp_path)})
    b = a.with_overrides(secret_key="b" * 32)
    assert service.server_secret(a) == "a" * 32
    assert not (tmp_path / "secret_key").exists()
    token = service._serializer(a, service.LINK_SALT).dumps({"c": 1, "k": 1})
    assert service._serializer(a, service.LINK_SALT).loads(token) == {"c": 1, "k": 1}
    with pytest.raises(BadSignature):
        service._serializer(b, service.LINK_SALT).loads(token)
    with pytest.raises(BadSignature):  # a link is never a session cookie
        service._serializer(a, service.SESSION_SALT).loads(token)
