"""The accounts pages without a browser: connecting X through the real OAuth redirects (the sandbox
hop over HTTP), forged and reused states, Bluesky's form, reconnecting, disconnecting through the
confirmation page, roles and tenancy."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import sqlalchemy as sa

from ouipost.db.admin_tables import audit_logs
from ouipost.db.tables import oauth_states, posts, social_accounts
from ouipost.identity import user_admin
from tests.test_accounts import connect as api_connect
from tests.test_publishing import create_post
from tests.ui.conftest import PASSWORD, client_sign_in, csrf_from

BLUESKY = {"platform": "bluesky", "identifier": "alice.bsky.social", "app_password": "abcd-efgh-ijkl-mnop"}


async def signed_in(client: Any, make_user: Any, role: str = "admin", workspace: str | None = None,
                    engine: Any = None) -> str:
    user = await make_user(role)
    if workspace is not None:
        async with engine.begin() as conn:
            await user_admin.set_workspaces(conn, user["id"], [workspace], datetime.now(UTC))
    return await client_sign_in(client, user["email"], PASSWORD)


async def account_rows(engine: Any, workspace_id: str) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        rows = await conn.execute(sa.select(social_accounts).where(social_accounts.c.workspace_id == workspace_id)
                                  .order_by(social_accounts.c.id))
        return [dict(r) for r in rows.mappings()]


async def start_connect(client: Any, token: str, ws: str, platform: str = "twitter") -> str:
    response = await client.post(f"/ui/w/{ws}/accounts/connect", data={"csrf_token": token, "platform": platform},
                                 allow_redirects=False)
    assert response.status == 303, await response.text()
    return response.headers["Location"]


async def sandbox_hop(auth_url: str) -> str:
    """What the browser does at the network: the sandbox's consent redirects at once (302)."""
    async with aiohttp.ClientSession() as session, session.get(auth_url, allow_redirects=False) as resp:
        assert resp.status == 302, await resp.text()
        return resp.headers["Location"]


def local_path(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


async def connect_through_ui(client: Any, token: str, ws: str, platform: str = "twitter") -> Any:
    auth_url = await start_connect(client, token, ws, platform)
    callback = await sandbox_hop(auth_url)
    response = await client.get(local_path(callback), allow_redirects=False)
    return response


async def test_connect_x_goes_through_the_networks_consent_and_back_to_the_list(
    client: Any, make_user: Any, key: Any, engine: Any, settings: Any,
) -> None:
    token = await signed_in(client, make_user)
    ws = key.workspace_id
    auth_url = await start_connect(client, token, ws)
    assert auth_url.startswith(settings.platform_base_url or "http")
    assert "/sandbox/" in auth_url or "twitter.com" in auth_url or "x.com" in auth_url
    query = parse_qs(urlsplit(auth_url).query)
    assert query["redirect_uri"] == [f"{settings.public_url}/ui/w/{ws}/accounts/callback"]

    callback = await sandbox_hop(auth_url)
    assert callback.startswith(f"{settings.public_url}/ui/w/{ws}/accounts/callback?")
    assert set(parse_qs(urlsplit(callback).query)) >= {"code", "state"}
    response = await client.get(local_path(callback), allow_redirects=False)
    assert response.status == 303 and response.headers["Location"] == f"/ui/w/{ws}/accounts"

    [account] = await account_rows(engine, ws)
    assert account["platform"] == "twitter" and account["status"] == "active" and account["is_default"]
    listing = await client.get(f"/ui/w/{ws}/accounts")
    html = await listing.text()
    assert f"Connected Twitter/X account {account['name']} (@{account['username']})." in html
    assert account["name"] in html and "status-active" in html and ">default<" in html


async def test_a_reused_or_forged_state_shows_a_clear_error_page(client: Any, make_user: Any, key: Any,
                                                                  engine: Any) -> None:
    token = await signed_in(client, make_user)
    ws = key.workspace_id
    callback = local_path(await sandbox_hop(await start_connect(client, token, ws)))
    assert (await client.get(callback, allow_redirects=False)).status == 303
    again = await client.get(callback, allow_redirects=False)
    assert again.status == 400
    assert "already used" in await again.text()

    forged = await client.get(f"/ui/w/{ws}/accounts/callback?state={'x' * 43}&code=abc", allow_redirects=False)
    assert forged.status == 400 and "Start again from the accounts page" in await forged.text()
    missing = await client.get(f"/ui/w/{ws}/accounts/callback", allow_redirects=False)
    assert missing.status == 400
    assert len(await account_rows(engine, ws)) == 1


async def test_a_state_started_for_another_workspace_is_refused(client: Any, make_user: Any, make_key: Any,
                                                                 engine: Any) -> None:
    token = await signed_in(client, make_user)
    mine, other = await make_key(), await make_key()
    callback = await sandbox_hop(await start_connect(client, token, other.workspace_id))
    forged = local_path(callback).replace(other.workspace_id, mine.workspace_id)
    response = await client.get(forged, allow_redirects=False)
    assert response.status == 400
    assert await account_rows(engine, mine.workspace_id) == []
    assert await account_rows(engine, other.workspace_id) == []


async def test_a_state_started_through_the_api_cannot_be_finished_in_the_ui(client: Any, make_user: Any,
                                                                            key: Any) -> None:
    await signed_in(client, make_user)
    started = await client.post("/api/accounts", json={"platform": "twitter", "callback_url": "https://a.example/cb"},
                                headers=key.headers())
    auth_url = (await started.json())["data"]["auth_url"]
    params = parse_qs(urlsplit(await sandbox_hop(auth_url)).query)
    response = await client.get(f"/ui/w/{key.workspace_id}/accounts/callback",
                                params={"state": params["state"][0], "code": params["code"][0]},
                                allow_redirects=False)
    assert response.status == 400


async def test_refusing_at_the_network_says_so(client: Any, make_user: Any, key: Any) -> None:
    await signed_in(client, make_user)
    response = await client.get(f"/ui/w/{key.workspace_id}/accounts/callback",
                                params={"error": "access_denied", "state": "s" * 43})
    assert response.status == 400
    assert "did not grant access: access_denied" in await response.text()


async def test_bluesky_connects_with_its_form_and_the_password_is_never_shown(
    client: Any, make_user: Any, key: Any, engine: Any,
) -> None:
    token = await signed_in(client, make_user)
    ws = key.workspace_id
    response = await client.post(f"/ui/w/{ws}/accounts/connect", data={"csrf_token": token, **BLUESKY},
                                 allow_redirects=False)
    assert response.status == 303
    [account] = await account_rows(engine, ws)
    assert account["username"] == "alice.bsky.social"
    html = await (await client.get(f"/ui/w/{ws}/accounts")).text()
    assert "Connected Bluesky account" in html and BLUESKY["app_password"] not in html


async def test_a_wrong_app_password_is_shown_next_to_the_field_and_nothing_is_saved(
    client: Any, make_user: Any, key: Any, engine: Any,
) -> None:
    token = await signed_in(client, make_user)
    ws = key.workspace_id
    wrong = {**BLUESKY, "app_password": "wrong-pass-word-xxxx"}
    response = await client.post(f"/ui/w/{ws}/accounts/connect", data={"csrf_token": token, **wrong})
    html = await response.text()
    assert response.status == 422
    assert 'id="app_password-errors"' in html
    assert 'value="alice.bsky.social"' in html  # the handle is kept
    assert "wrong-pass-word-xxxx" not in html  # the password is not
    assert await account_rows(engine, ws) == []

    empty = await client.post(f"/ui/w/{ws}/accounts/connect",
                              data={"csrf_token": token, "platform": "bluesky", "identifier": "", "app_password": ""})
    html = await empty.text()
    assert empty.status == 422
    assert html.count("required to connect Bluesky") == 2  # the API's words, under each field


async def test_reconnecting_an_expired_account_updates_it_in_place(client: Any, make_user: Any, key: Any,
                                                                    engine: Any) -> None:
    token = await signed_in(client, make_user)
    ws = key.workspace_id
    assert (await connect_through_ui(client, token, ws)).status == 303
    [account] = await account_rows(engine, ws)
    async with engine.begin() as conn:
        await conn.execute(social_accounts.update().where(social_accounts.c.id == account["id"])
                           .values(status="expired", last_error="The token expired; reconnect the account"))
    html = await (await client.get(f"/ui/w/{ws}/accounts")).text()
    assert "status-expired" in html and f"/accounts/{account['id']}/reconnect" in html

    response = await client.post(f"/ui/w/{ws}/accounts/{account['id']}/reconnect", data={"csrf_token": token},
                                 allow_redirects=False)
    assert response.status == 303
    back = await client.get(local_path(await sandbox_hop(response.headers["Location"])), allow_redirects=False)
    assert back.status == 303
    [again] = await account_rows(engine, ws)
    assert again["id"] == account["id"] and again["status"] == "active" and again["last_error"] is None
    assert again["access_token"] != account["access_token"]


async def test_reconnecting_a_bluesky_account_opens_its_form_with_the_handle(
    client: Any, make_user: Any, key: Any, engine: Any,
) -> None:
    [account] = await api_connect(client, key, "bluesky")
    token = await signed_in(client, make_user)
    ws = key.workspace_id
    response = await client.post(f"/ui/w/{ws}/accounts/{account['id']}/reconnect", data={"csrf_token": token},
                                 allow_redirects=False)
    assert response.status == 303
    assert response.headers["Location"] == f"/ui/w/{ws}/accounts?identifier=alice.bsky.social#connect-password"
    html = await (await client.get(response.headers["Location"])).text()
    assert 'value="alice.bsky.social"' in html


async def test_a_network_without_app_credentials_says_so_on_the_list(
    aiohttp_client: Any, settings: Any, engine: Any, make_user: Any, key: Any,
) -> None:
    from ouipost.app import create_app

    client = await aiohttp_client(create_app(settings.with_overrides(sandbox=False, platform_base_url=None),
                                             engine=engine))
    token = await signed_in(client, make_user)
    response = await client.post(f"/ui/w/{key.workspace_id}/accounts/connect",
                                 data={"csrf_token": token, "platform": "linkedin"}, allow_redirects=False)
    assert response.status == 422
    assert "OUIPOST_LINKEDIN_CLIENT_ID" in await response.text()
    async with engine.connect() as conn:
        assert await conn.scalar(sa.select(sa.func.count()).select_from(oauth_states)) == 0


async def test_disconnect_confirmation_lists_the_posts_returning_to_draft(
    client: Any, make_user: Any, key: Any, engine: Any,
) -> None:
    token = await signed_in(client, make_user)
    ws = key.workspace_id
    await connect_through_ui(client, token, ws)
    [bluesky] = await api_connect(client, key, "bluesky")
    [x_account] = [a for a in await account_rows(engine, ws) if a["platform"] == "twitter"]
    when = (datetime.now(UTC) + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    only_x = await create_post(client, key, ["twitter"], content="Only on X <b>bold</b>")
    both = await create_post(client, key, ["twitter", "bluesky"], content="On X and Bluesky")
    for post in (only_x, both):
        resp = await client.post(f"/api/posts/{post['id']}/schedule", json={"scheduled_at": when},
                                 headers=key.headers())
        assert resp.status == 200, await resp.text()

    page = await client.get(f"/ui/w/{ws}/accounts/{x_account['id']}/disconnect")
    html = await page.text()
    assert page.status == 200
    assert "1 scheduled post will return to draft" in html
    assert "Only on X &lt;b&gt;bold&lt;/b&gt;" in html and "On X and Bluesky" not in html
    assert f"/ui/w/{ws}/posts/{only_x['id']}" in html

    response = await client.post(f"/ui/w/{ws}/accounts/{x_account['id']}/disconnect", data={"csrf_token": token},
                                 allow_redirects=False)
    assert response.status == 303
    async with engine.connect() as conn:
        statuses = dict((await conn.execute(sa.select(posts.c.id, posts.c.status))).all())
        audit = (await conn.execute(sa.select(audit_logs).where(audit_logs.c.action == "account.disconnected"))
                 ).mappings().all()
    assert statuses[only_x["id"]] == "draft" and statuses[both["id"]] == "scheduled"
    assert [a["id"] for a in await account_rows(engine, ws)] == [bluesky["id"]]
    assert len(audit) == 1 and audit[0]["resource_id"] == x_account["id"] and audit[0]["user_id"] is not None


async def test_the_api_disconnection_writes_the_same_audit_entry(client: Any, key: Any, engine: Any) -> None:
    [account] = await api_connect(client, key, "bluesky")
    resp = await client.delete(f"/api/accounts/{account['id']}", headers=key.headers())
    assert resp.status == 200
    async with engine.connect() as conn:
        actions = [r[0] for r in await conn.execute(sa.select(audit_logs.c.action))]
    assert actions == ["account.disconnected"]


async def test_a_viewer_sees_no_control_and_forged_posts_change_nothing(
    client: Any, make_user: Any, key: Any, engine: Any,
) -> None:
    [account] = await api_connect(client, key, "bluesky")
    ws = key.workspace_id
    token = await signed_in(client, make_user, "viewer", workspace=ws, engine=engine)
    html = await (await client.get(f"/ui/w/{ws}/accounts")).text()
    assert account["name"] in html
    assert "/accounts/connect" not in html and "/disconnect" not in html and "/reconnect" not in html

    for path, data in (
        (f"/ui/w/{ws}/accounts/connect", {"platform": "twitter"}),
        (f"/ui/w/{ws}/accounts/connect", BLUESKY),
        (f"/ui/w/{ws}/accounts/{account['id']}/disconnect", {}),
        (f"/ui/w/{ws}/accounts/{account['id']}/reconnect", {}),
    ):
        response = await client.post(path, data={"csrf_token": token, **data}, allow_redirects=False)
        assert response.status == 403, path
    assert (await client.get(f"/ui/w/{ws}/accounts/{account['id']}/disconnect")).status == 403
    assert (await client.get(f"/ui/w/{ws}/accounts/callback?state=x&code=y")).status == 403
    assert [a["id"] for a in await account_rows(engine, ws)] == [account["id"]]
    async with engine.connect() as conn:
        assert await conn.scalar(sa.select(sa.func.count()).select_from(oauth_states)) == 0


async def test_another_workspace_and_its_accounts_are_not_found(client: Any, make_user: Any, make_key: Any,
                                                                engine: Any) -> None:
    mine, theirs = await make_key(), await make_key()
    [foreign] = await api_connect(client, theirs, "bluesky")
    token = await signed_in(client, make_user, "editor", workspace=mine.workspace_id, engine=engine)
    assert (await client.get(f"/ui/w/{theirs.workspace_id}/accounts")).status == 404
    assert (await client.get(f"/ui/w/{mine.workspace_id}/accounts/{foreign['id']}/disconnect")).status == 404
    response = await client.post(f"/ui/w/{mine.workspace_id}/accounts/{foreign['id']}/disconnect",
                                 data={"csrf_token": token})
    assert response.status == 404
    assert len(await account_rows(engine, theirs.workspace_id)) == 1


async def test_the_page_carries_a_csrf_token_in_every_form(client: Any, make_user: Any, key: Any) -> None:
    await signed_in(client, make_user)
    html = await (await client.get(f"/ui/w/{key.workspace_id}/accounts")).text()
    assert html.count('method="post"') - 1 == html.count(f'value="{csrf_from(html)}"') - 1  # sign-out form too
