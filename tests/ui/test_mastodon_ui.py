"""Connecting a Mastodon account from the admin UI: the server field, then its consent page."""

from __future__ import annotations

from typing import Any

from tests.ui.conftest import csrf_from
from tests.ui.test_accounts_ui import account_rows, local_path, sandbox_hop, signed_in


async def test_the_admin_ui_connects_a_mastodon_account_by_its_server(
    client: Any, make_user: Any, key: Any, engine: Any, sandbox: Any
) -> None:
    token = await signed_in(client, make_user)
    ws = key.workspace_id
    page = await (await client.get(f"/ui/w/{ws}/accounts")).text()
    assert 'id="connect-mastodon"' in page and 'name="instance"' in page
    refused = await client.post(f"/ui/w/{ws}/accounts/connect", allow_redirects=False,
                                data={"csrf_token": csrf_from(page) or token, "platform": "mastodon", "instance": ""})
    assert refused.status == 422 and "aria-invalid" in await refused.text()
    response = await client.post(f"/ui/w/{ws}/accounts/connect", allow_redirects=False,
                                 data={"csrf_token": token, "platform": "mastodon", "instance": "ui.example"})
    assert response.status == 303, await response.text()
    callback = await sandbox_hop(response.headers["Location"])
    back = await client.get(local_path(callback), allow_redirects=False)
    assert back.status == 303
    [account] = await account_rows(engine, ws)
    assert account["platform"] == "mastodon" and account["username"] == "ouipost@ui.example"


async def test_reconnecting_a_mastodon_account_goes_back_to_its_server(
    client: Any, make_user: Any, key: Any, engine: Any, sandbox: Any
) -> None:
    token = await signed_in(client, make_user)
    ws = key.workspace_id
    response = await client.post(f"/ui/w/{ws}/accounts/connect", allow_redirects=False,
                                 data={"csrf_token": token, "platform": "mastodon", "instance": "again.example"})
    await client.get(local_path(await sandbox_hop(response.headers["Location"])), allow_redirects=False)
    [account] = await account_rows(engine, ws)
    again = await client.post(f"/ui/w/{ws}/accounts/{account['id']}/reconnect", data={"csrf_token": token},
                              allow_redirects=False)
    assert again.status == 303 and "/again.example/oauth/authorize" in again.headers["Location"]
    back = await client.get(local_path(await sandbox_hop(again.headers["Location"])), allow_redirects=False)
    assert back.status == 303
    assert [a["id"] for a in await account_rows(engine, ws)] == [account["id"]]
