"""Behind a trusted reverse proxy the client's address is the one X-Forwarded-For gives (the audit
log records it); from anywhere else the header is ignored; /metrics without a token is never served
to what a proxy passed on."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest
import sqlalchemy as sa

from ouipost.app import create_app
from ouipost.config import SettingsError, load_settings
from ouipost.core.forwarded import client_address
from ouipost.db.admin_tables import audit_logs
from tests.admin.conftest import PASSWORD

LOOPBACK = (ipaddress.ip_network("127.0.0.1/32"), ipaddress.ip_network("::1/128"))
PRIVATE = (ipaddress.ip_network("10.0.0.0/8"),)


@pytest.mark.parametrize(("chain", "proxies", "client"), [
    (["203.0.113.7"], LOOPBACK, "203.0.113.7"),
    (["198.51.100.1, 203.0.113.7"], LOOPBACK, "203.0.113.7"),  # the left part is the client's to invent
    (["198.51.100.1", "203.0.113.7, 10.0.0.2"], PRIVATE, "203.0.113.7"),  # several header lines
    (["10.0.0.5, 10.0.0.6"], PRIVATE, "10.0.0.5"),  # only proxies of ours: the first of them
    (["[2001:db8::1]"], LOOPBACK, "2001:db8::1"),
    (["not-an-address"], LOOPBACK, None),
    ([], LOOPBACK, None),
])
def test_the_client_is_the_last_hop_that_is_not_a_trusted_proxy(chain: list[str], proxies: Any,
                                                               client: str | None) -> None:
    assert client_address(chain, proxies) == client


async def _login_ip(aiohttp_client: Any, settings: Any, engine: Any, clock: Any, make_user: Any,
                    headers: dict[str, str]) -> str:
    client = await aiohttp_client(create_app(settings, engine=engine, clock=clock))
    user = await make_user("admin")
    resp = await client.post("/admin/login", json={"email": user["email"], "password": PASSWORD}, headers=headers)
    assert resp.status == 200, await resp.text()
    async with engine.connect() as conn:
        return await conn.scalar(sa.select(audit_logs.c.ip_address).where(
            audit_logs.c.action == "auth.login_succeeded", audit_logs.c.user_id == user["id"]))


async def test_behind_a_trusted_proxy_the_audit_log_records_the_client(
    aiohttp_client: Any, settings: Any, engine: Any, clock: Any, make_user: Any,
) -> None:
    trusted = settings.with_overrides(trusted_proxies=LOOPBACK)
    ip = await _login_ip(aiohttp_client, trusted, engine, clock, make_user,
                         {"X-Forwarded-For": "198.51.100.1, 203.0.113.7"})
    assert ip == "203.0.113.7"


async def test_without_trusted_proxies_forwarding_headers_are_ignored(
    aiohttp_client: Any, settings: Any, engine: Any, clock: Any, make_user: Any,
) -> None:
    ip = await _login_ip(aiohttp_client, settings, engine, clock, make_user, {"X-Forwarded-For": "203.0.113.7"})
    assert ip == "127.0.0.1"


async def test_metrics_without_a_token_are_not_served_through_a_proxy(client: Any) -> None:
    assert (await client.get("/metrics")).status == 200  # loopback, direct
    for header in ("X-Forwarded-For", "Forwarded", "X-Real-IP"):
        resp = await client.get("/metrics", headers={header: "203.0.113.7"})
        assert resp.status == 403, header
        body = await resp.json()
        assert body["error"]["code"] == "FORBIDDEN" and "OUIPOST_METRICS_TOKEN" in body["error"]["message"]


def test_a_bad_trusted_proxy_is_named_at_start(tmp_path: Any) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings({"OUIPOST_DATA_DIR": str(tmp_path), "OUIPOST_TRUSTED_PROXIES": "127.0.0.1, nginx.local"})
    assert "OUIPOST_TRUSTED_PROXIES" in str(info.value) and "nginx.local" in str(info.value)
    settings = load_settings({"OUIPOST_DATA_DIR": str(tmp_path), "OUIPOST_TRUSTED_PROXIES": "127.0.0.1, 10.0.0.0/8"})
    assert settings.trusted_proxies == (ipaddress.ip_network("127.0.0.1/32"), ipaddress.ip_network("10.0.0.0/8"))
