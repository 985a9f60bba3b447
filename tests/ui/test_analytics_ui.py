"""The analytics pages without a browser, on seeded insights with exact figures (as
tests/analytics/test_workspace.py seeds them: targets published and snapshotted through the
domain functions the worker uses). The workspace lives in Europe/Paris.

  P1 twitter   2025-03-28T10:00Z   300 impressions, 25 engagement
  P1 linkedin  2025-03-28T10:00:30Z 200 impressions, 20 engagement
  P2 twitter   2025-03-29T23:30Z (Paris 30th)   1000 / 50   (text starts with "=": a formula)
  P3 linkedin  2025-03-30T22:30Z (Paris 31st)   400 / 40
  P4 bluesky   2025-03-31T21:59Z, no insights yet
  P5 twitter   2025-04-02T08:00Z, after the period
"""

from __future__ import annotations

import csv
import io
import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from typing import Any

import pytest

from ouipost.identity import user_admin
from ouipost.ui.views.analytics import api_query, csv_cell, filter_values
from tests.analytics.conftest import published_at, snapshot
from tests.test_publishing import create_post
from tests.ui.conftest import PASSWORD, client_sign_in
from tests.ui.test_accounts_ui import signed_in

PERIOD = {"period": "custom", "from": "2025-03-28", "to": "2025-04-01", "granularity": "day"}
SVG = "{http://www.w3.org/2000/svg}"
FORMULA = "=HYPERLINK(\"http://evil.example\") midnight croissants"


@pytest.fixture
async def seeded(client: Any, make_key: Any, engine: Any) -> dict[str, Any]:
    key = await make_key()
    resp = await client.put(f"/api/workspaces/{key.workspace_id}", json={"settings": {"timezone": "Europe/Paris"}},
                            headers=key.headers())
    assert resp.status == 200, await resp.text()
    p1 = await create_post(client, key, ["twitter", "linkedin"], content="Spring <b>menu</b>")
    p2 = await create_post(client, key, ["twitter"], content=FORMULA)
    p3 = await create_post(client, key, ["linkedin"], content="We are hiring")
    p4 = await create_post(client, key, ["bluesky"], content="Fresh from the oven")
    p5 = await create_post(client, key, ["twitter"], content="April fools")
    t = await published_at(engine, p1["id"], "twitter", "2025-03-28T10:00:00Z")
    await snapshot(engine, t, "2025-03-28T11:00:00Z", impressions=100, engagement=10, clicks=2)
    await snapshot(engine, t, "2025-03-29T10:00:00Z", impressions=300, engagement=25, clicks=5)
    t = await published_at(engine, p1["id"], "linkedin", "2025-03-28T10:00:30Z")
    await snapshot(engine, t, "2025-03-28T12:00:00Z", impressions=200, reach=150, engagement=20)
    t = await published_at(engine, p2["id"], "twitter", "2025-03-29T23:30:00Z")
    await snapshot(engine, t, "2025-03-30T06:00:00Z", impressions=1000, engagement=50, clicks=10)
    t = await published_at(engine, p3["id"], "linkedin", "2025-03-30T22:30:00Z")
    await snapshot(engine, t, "2025-03-31T08:00:00Z", impressions=400, reach=300, engagement=40)
    await published_at(engine, p4["id"], "bluesky", "2025-03-31T21:59:00Z")
    t = await published_at(engine, p5["id"], "twitter", "2025-04-02T08:00:00Z")
    await snapshot(engine, t, "2025-04-02T09:00:00Z", impressions=5000, engagement=500)
    return {"key": key, "ws": key.workspace_id, "posts": [p1, p2, p3, p4, p5]}


def svgs(html: str) -> dict[str, ET.Element]:
    found = {}
    for match in re.finditer(r"<svg .*?</svg>", html, re.S):
        root = ET.fromstring(match.group(0))
        found[root.get("id")] = root
    return found


def series_points(root: ET.Element) -> dict[str, list[str]]:
    return {g.get("data-series"): [c.find(f"{SVG}title").text for c in g.findall(f"{SVG}circle")]
            for g in root.iter(f"{SVG}g") if g.get("data-series")}


def bar_titles(root: ET.Element) -> list[str]:
    return [r.find(f"{SVG}title").text for r in root.iter(f"{SVG}rect") if "bar" in (r.get("class") or "").split()]


def read_csv(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def test_filters_become_the_apis_query() -> None:
    now = datetime(2025, 4, 1, 22, 30, tzinfo=UTC)  # already the 2nd in Paris
    assert api_query(filter_values({}), "Europe/Paris", now) == {
        "granularity": "day", "from": "2025-03-04", "to": "2025-04-02"}
    assert api_query(filter_values({"period": "7d", "platform": "twitter", "granularity": "week"}), "UTC", now) == {
        "granularity": "week", "from": "2025-03-26", "to": "2025-04-01", "platform": "twitter"}
    assert api_query(filter_values({"from": "2025-01-01"}), "UTC", now) == {"granularity": "day", "from": "2025-01-01"}


def test_csv_cells_never_start_a_formula() -> None:
    assert [csv_cell(v) for v in ("=1+1", "+1", "-1", "@SUM(A1)", "\tx", "plain", 12, -3, 2.5, None)] == [
        "'=1+1", "'+1", "'-1", "'@SUM(A1)", "'\tx", "plain", 12, -3, 2.5, ""]


async def test_the_workspace_page_draws_the_charts_of_the_seeded_figures(client: Any, make_user: Any,
                                                                         seeded: dict[str, Any]) -> None:
    await signed_in(client, make_user)
    response = await client.get(f"/ui/w/{seeded['ws']}/analytics", params=PERIOD)
    html = await response.text()
    assert response.status == 200
    assert 'style="' not in html and "<script>" not in html
    charts = svgs(html)
    assert set(charts) == {"chart-timeline", "chart-networks", "chart-top-posts"}
    for root in charts.values():
        assert root.get("role") == "img" and root.find(f"{SVG}title").text and root.find(f"{SVG}desc").text

    points = series_points(charts["chart-timeline"])
    assert points["Impressions"] == ["Impressions, 2025-03-28: 500", "Impressions, 2025-03-29: 0",
                                     "Impressions, 2025-03-30: 1,000", "Impressions, 2025-03-31: 400",
                                     "Impressions, 2025-04-01: 0"]
    assert points["Engagement"][0] == "Engagement, 2025-03-28: 45"
    assert bar_titles(charts["chart-networks"]) == [
        "Bluesky, Impressions: 0", "Bluesky, Engagement: 0", "LinkedIn, Impressions: 600", "LinkedIn, Engagement: 60",
        "Twitter/X, Impressions: 1,300", "Twitter/X, Engagement: 75"]
    top = bar_titles(charts["chart-top-posts"])
    assert len(top) == 10 and top[0].startswith("=HYPERLINK") and top[0].endswith("(Twitter/X), Impressions: 1,000")
    assert "Spring &lt;b&gt;menu&lt;/b&gt;" in html and "<b>menu</b>" not in html
    assert ">1,900</span>" in html and ">135</span>" in html  # summary figures
    assert f"/ui/w/{seeded['ws']}/posts/{seeded['posts'][1]['id']}/analytics" in html


async def test_the_network_filter_and_granularity_apply(client: Any, make_user: Any, seeded: dict[str, Any]) -> None:
    await signed_in(client, make_user)
    html = await (await client.get(f"/ui/w/{seeded['ws']}/analytics",
                                   params={**PERIOD, "platform": "linkedin", "granularity": "week"})).text()
    charts = svgs(html)
    assert series_points(charts["chart-timeline"])["Impressions"] == [
        "Impressions, 2025-03-24: 200", "Impressions, 2025-03-31: 400"]
    assert bar_titles(charts["chart-networks"]) == ["LinkedIn, Impressions: 600", "LinkedIn, Engagement: 60"]


async def test_each_csv_matches_its_chart(client: Any, make_user: Any, seeded: dict[str, Any]) -> None:
    await signed_in(client, make_user)
    ws = seeded["ws"]
    html = await (await client.get(f"/ui/w/{ws}/analytics", params=PERIOD)).text()
    links = re.findall(r'href="(/ui/w/[^"]+/analytics\.csv\?[^"]+)"', html)
    assert len(links) == 3
    for link in links:
        response = await client.get(link.replace("&amp;", "&"))
        assert response.status == 200 and response.content_type == "text/csv"
        assert response.headers["Content-Disposition"].startswith("attachment; filename=\"analytics-")
    timeline = read_csv(await (await client.get(f"/ui/w/{ws}/analytics.csv",
                                                params={**PERIOD, "chart": "timeline"})).text())
    assert timeline[0] == ["period", "impressions", "engagement", "posts", "reach", "clicks"]
    assert [row[:4] for row in timeline[1:]] == [["2025-03-28", "500", "45", "1"], ["2025-03-29", "0", "0", "0"],
                                                  ["2025-03-30", "1000", "50", "1"], ["2025-03-31", "400", "40", "2"],
                                                  ["2025-04-01", "0", "0", "0"]]
    networks = read_csv(await (await client.get(f"/ui/w/{ws}/analytics.csv",
                                                params={**PERIOD, "chart": "networks"})).text())
    assert [row[:3] for row in networks[1:]] == [["bluesky", "0", "0"], ["linkedin", "600", "60"],
                                                  ["twitter", "1300", "75"]]
    top = read_csv(await (await client.get(f"/ui/w/{ws}/analytics.csv",
                                           params={**PERIOD, "chart": "top_posts"})).text())
    assert top[0][:6] == ["rank", "post_id", "network", "content", "impressions", "engagement"]
    assert [(r[0], r[2], r[4]) for r in top[1:]] == [("1", "twitter", "1000"), ("2", "linkedin", "400"),
                                                     ("3", "twitter", "300"), ("4", "linkedin", "200"),
                                                     ("5", "bluesky", "0")]
    assert top[1][3] == "'" + FORMULA  # a formula in a post is text in the spreadsheet

    bad = await client.get(f"/ui/w/{ws}/analytics.csv", params={**PERIOD, "chart": "everything"})
    assert bad.status == 422


async def test_bad_filters_show_the_apis_messages(client: Any, make_user: Any, seeded: dict[str, Any]) -> None:
    await signed_in(client, make_user)
    ws = seeded["ws"]
    response = await client.get(f"/ui/w/{ws}/analytics", params={**PERIOD, "from": "2025-04-05"})
    html = await response.text()
    assert response.status == 422 and 'id="from-errors"' in html and "must not be after to" in html
    assert "<svg" not in html.split("</form>", 1)[1]
    response = await client.get(f"/ui/w/{ws}/analytics", params={**PERIOD, "from": "yesterday-ish"})
    assert response.status == 422 and "Not an ISO 8601 date" in await response.text()
    response = await client.get(f"/ui/w/{ws}/analytics", params={**PERIOD, "platform": "myspace"})
    assert response.status == 422 and 'id="platform-errors"' in await response.text()


async def test_an_empty_period_draws_empty_charts(client: Any, make_user: Any, key: Any) -> None:
    await signed_in(client, make_user)
    html = await (await client.get(f"/ui/w/{key.workspace_id}/analytics")).text()
    charts = svgs(html)
    assert len(series_points(charts["chart-timeline"])["Impressions"]) == 30  # the last 30 days, all zero
    assert re.search(r'name="from" type="date" value="\d{4}-\d{2}-\d{2}"', html)  # the preset's range is shown
    assert "No data for this period" in html  # by network and top posts have nothing


async def test_the_post_page_charts_its_timeline_and_networks(client: Any, make_user: Any,
                                                              seeded: dict[str, Any]) -> None:
    await signed_in(client, make_user)
    ws, p1 = seeded["ws"], seeded["posts"][0]
    response = await client.get(f"/ui/w/{ws}/posts/{p1['id']}/analytics")
    html = await response.text()
    assert response.status == 200 and "Spring &lt;b&gt;menu&lt;/b&gt;" in html
    charts = svgs(html)
    assert series_points(charts["chart-post-timeline"])["Impressions"] == [
        "Impressions, 03-28 12:00: 100", "Impressions, 03-28 13:00: 300", "Impressions, 03-29 11:00: 500"]
    assert bar_titles(charts["chart-post-networks"]) == [
        "LinkedIn, Impressions: 200", "LinkedIn, Engagement: 20", "Twitter/X, Impressions: 300",
        "Twitter/X, Engagement: 25"]
    timeline = read_csv(await (await client.get(f"/ui/w/{ws}/posts/{p1['id']}/analytics.csv?chart=timeline")).text())
    assert [r[:3] for r in timeline] == [["timestamp", "impressions", "engagement"],
                                         ["2025-03-28T11:00:00Z", "100", "10"], ["2025-03-28T12:00:00Z", "300", "30"],
                                         ["2025-03-29T10:00:00Z", "500", "45"]]
    networks = read_csv(await (await client.get(f"/ui/w/{ws}/posts/{p1['id']}/analytics.csv?chart=networks")).text())
    assert [r[:3] for r in networks[1:]] == [["linkedin", "200", "20"], ["twitter", "300", "25"]]


async def test_roles_and_tenancy(client: Any, make_user: Any, make_key: Any, engine: Any,
                                 seeded: dict[str, Any]) -> None:
    ws, post = seeded["ws"], seeded["posts"][0]
    other = await make_key()
    foreign = await create_post(client, other, ["twitter"], content="Not yours")
    await signed_in(client, make_user, "viewer", workspace=ws, engine=engine)
    html = await (await client.get(f"/ui/w/{ws}/analytics", params=PERIOD)).text()
    assert "chart-timeline" in html
    assert html.count('method="post"') == 1  # signing out is the only form that changes anything
    assert (await client.get(f"/ui/w/{other.workspace_id}/analytics")).status == 404
    assert (await client.get(f"/ui/w/{other.workspace_id}/analytics.csv?chart=timeline")).status == 404
    assert (await client.get(f"/ui/w/{ws}/posts/{foreign['id']}/analytics")).status == 404
    assert (await client.get(f"/ui/w/{ws}/posts/{foreign['id']}/analytics.csv?chart=timeline")).status == 404

    # A user without analytics.view (here a viewer whose permissions were all taken away) gets 403.
    client.session.cookie_jar.clear()
    user = await make_user("viewer", permissions=[])
    async with engine.begin() as conn:
        await user_admin.set_workspaces(conn, user["id"], [ws], datetime.now(UTC))
    await client_sign_in(client, user["email"], PASSWORD)
    for path in (f"/ui/w/{ws}/analytics", f"/ui/w/{ws}/analytics.csv?chart=timeline",
                 f"/ui/w/{ws}/posts/{post['id']}/analytics"):
        assert (await client.get(path)).status == 403, path
