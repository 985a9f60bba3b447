"""The waits of publishing an operator can set: how often a network's media processing is read
(OUIPOST_MEDIA_POLL_SECONDS) and the first retry backoff after a temporary error
(OUIPOST_PUBLISH_BACKOFF_SECONDS)."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from ouipost.config import SettingsError, load_settings
from ouipost.platforms import adapter_class, make_adapter
from ouipost.platforms.http import PlatformHttp
from ouipost.platforms.registry import NETWORKS


def test_every_network_that_waits_for_media_processing_can_be_given_its_pace() -> None:
    for network in NETWORKS:
        attributes = adapter_class(network).media_poll_attributes
        assert attributes, f"{network} polls media processing at a pace no setting reaches"
        assert all(hasattr(adapter_class(network), name) for name in attributes), network


async def test_media_poll_seconds_set_each_adapters_pace_and_a_named_network_wins_over_star(tmp_path: Path) -> None:
    settings = load_settings({"OUIPOST_DATA_DIR": str(tmp_path),
                              "OUIPOST_MEDIA_POLL_SECONDS": "instagram=1.5, *=0.2"})
    async with aiohttp.ClientSession() as session:
        http = PlatformHttp(session)
        for network in NETWORKS:
            adapter = make_adapter(network, http, settings)
            expected = 1.5 if network == "instagram" else 0.2
            assert {getattr(adapter, name) for name in adapter.media_poll_attributes} == {expected}, network
        # The class keeps its default: the setting is one process's adapters, not a global.
        assert adapter_class("instagram").container_poll_interval == 5.0


async def test_without_the_setting_adapters_keep_their_own_pace(tmp_path: Path) -> None:
    async with aiohttp.ClientSession() as session:
        adapter = make_adapter("linkedin", PlatformHttp(session), load_settings({"OUIPOST_DATA_DIR": str(tmp_path)}))
    assert adapter.poll_interval == 2.0  # type: ignore[attr-defined]


def test_publish_backoff_defaults_to_five_seconds_and_can_be_shortened(tmp_path: Path) -> None:
    assert load_settings({"OUIPOST_DATA_DIR": str(tmp_path)}).publish_backoff_seconds == 5.0
    settings = load_settings({"OUIPOST_DATA_DIR": str(tmp_path), "OUIPOST_PUBLISH_BACKOFF_SECONDS": "0.5"})
    assert settings.publish_backoff_seconds == 0.5


@pytest.mark.parametrize(("env", "message"), [
    ({"OUIPOST_MEDIA_POLL_SECONDS": "instagram"}, "OUIPOST_MEDIA_POLL_SECONDS: 'instagram' is not network=seconds"),
    ({"OUIPOST_MEDIA_POLL_SECONDS": "myspace=2"}, "OUIPOST_MEDIA_POLL_SECONDS: 'myspace=2'"),
    ({"OUIPOST_MEDIA_POLL_SECONDS": "tiktok=soon"}, "OUIPOST_MEDIA_POLL_SECONDS: 'tiktok=soon'"),
    ({"OUIPOST_MEDIA_POLL_SECONDS": "*=0"}, "OUIPOST_MEDIA_POLL_SECONDS: '*=0'"),
    ({"OUIPOST_PUBLISH_BACKOFF_SECONDS": "fast"}, "OUIPOST_PUBLISH_BACKOFF_SECONDS must be a number of seconds"),
    ({"OUIPOST_PUBLISH_BACKOFF_SECONDS": "0"}, "OUIPOST_PUBLISH_BACKOFF_SECONDS must be between 0.1 and 3600"),
])
def test_malformed_waits_fail_with_a_clear_message(tmp_path: Path, env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message.replace("*", r"\*")):
        load_settings({"OUIPOST_DATA_DIR": str(tmp_path), **env})
