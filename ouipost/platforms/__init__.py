"""Network adapters: one module per network, looked up through the registry."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Protocol

from ouipost.core.clock import Clock
from ouipost.platforms.base import ClientCredentials, PlatformAdapter
from ouipost.platforms.http import PlatformHttp
from ouipost.platforms.registry import get_platform


class OAuthApp(Protocol):
    """One network's OAuth app credentials as configured (ouipost.config.NetworkCredentials)."""

    @property
    def client_id(self) -> str: ...

    @property
    def client_secret(self) -> str: ...


class AdapterSettings(Protocol):
    """What choosing an adapter reads from the settings; ouipost.config.Settings is one. The
    adapters sit below the configuration (which reads the registry to know the networks), so they
    name only this."""

    @property
    def credentials(self) -> Mapping[str, OAuthApp]: ...

    @property
    def sandbox(self) -> bool: ...

    @property
    def media_poll_seconds(self) -> Mapping[str, float]: ...


# The sandbox's OAuth apps accept these, so sandbox mode works with nothing configured.
SANDBOX_CREDENTIALS = ClientCredentials("sandbox-client", "sandbox-secret")


class NetworkNotConfigured(Exception):
    """No OAuth app credentials for this network, and the sandbox is off."""


def adapter_class(network: str) -> type[PlatformAdapter]:
    module_name, _, class_name = get_platform(network).adapter.partition(":")
    return getattr(importlib.import_module(module_name), class_name)


def client_credentials(settings: AdapterSettings, network: str) -> ClientCredentials:
    configured = settings.credentials.get(network)
    if configured is not None:
        return ClientCredentials(configured.client_id, configured.client_secret)
    if settings.sandbox or not get_platform(network).oauth_supported:
        return SANDBOX_CREDENTIALS
    if get_platform(network).instance_based:
        return ClientCredentials("", "")  # an app per server, registered when connecting (instance_apps)
    raise NetworkNotConfigured(
        f"No OAuth app is configured for {network}: set OUIPOST_{network.upper()}_CLIENT_ID and "
        f"OUIPOST_{network.upper()}_CLIENT_SECRET, or run in sandbox mode"
    )


def make_adapter(
    network: str, http: PlatformHttp, settings: AdapterSettings, clock: Clock | None = None,
) -> PlatformAdapter:
    """The adapter of `network`, talking through `http` and reading `clock` (the real one unless
    given); NetworkNotConfigured without credentials."""
    adapter = adapter_class(network)(http, client_credentials(settings, network), clock)
    poll = settings.media_poll_seconds.get(network)
    if poll is not None:
        adapter.poll_media_every(poll)
    return adapter
