"""Provider adapters, one module per wire API, all behind ``providers.base.Provider``.

This registry is the single list of channel types: channel validation, the CLI and the OneAPI import
read it. Built-ins register through :func:`register`, the same call a plugin would make.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from zhiku.gateway.providers.base import ChannelFields, ConfigField, Provider, ProviderContext

ProviderFactory = Callable[[ProviderContext], Provider]


@dataclass(frozen=True)
class ChannelType:
    name: str
    factory: ProviderFactory
    oneapi_types: frozenset[int]  # OneAPI's channel type numbers this provider speaks for
    fields: ChannelFields  # what its channels' rows hold for it (the console's channel editor)


_TYPES: dict[str, ChannelType] = {}


def register(channel_type: str, factory: ProviderFactory, *, oneapi_types: Iterable[int] = (),
             fields: ChannelFields | None = None) -> None:
    """``fields`` defaults to the factory's ``channel_fields`` attribute, else a base URL and a key."""
    declared = fields or getattr(factory, "channel_fields", None) or ChannelFields()
    _TYPES[channel_type] = ChannelType(channel_type, factory, frozenset(oneapi_types), declared)


def channel_types() -> list[str]:
    _register_builtins()
    return sorted(_TYPES)


# Read by the channel test (``admin.channel_probe``) whatever the type.
COMMON_CONFIG = (ConfigField("test_model"),)


def channel_fields(channel_type: str) -> ChannelFields:
    """The fields a channel of ``channel_type`` uses, the common config keys included."""
    _register_builtins()
    declared = _TYPES[channel_type].fields
    return ChannelFields(base_url_default=declared.base_url_default, base_url_required=declared.base_url_required,
                         uses_key=declared.uses_key, config=declared.config + COMMON_CONFIG)


def channel_type_for_oneapi(oneapi_type: int) -> str | None:
    """The channel type that serves OneAPI's channel type ``oneapi_type``; None when none does."""
    _register_builtins()
    return next((t.name for t in _TYPES.values() if oneapi_type in t.oneapi_types), None)


def build_providers(context: ProviderContext) -> dict[str, Provider]:
    _register_builtins()
    return {name: kind.factory(context) for name, kind in _TYPES.items()}


_builtins_registered = False


def _register_builtins() -> None:
    global _builtins_registered
    if _builtins_registered:
        return
    _builtins_registered = True
    from zhiku.gateway.providers.anthropic import AnthropicProvider
    from zhiku.gateway.providers.azure import AzureProvider
    from zhiku.gateway.providers.local import LocalProvider
    from zhiku.gateway.providers.ollama import OllamaProvider
    from zhiku.gateway.providers.openai import OpenAIProvider

    for provider in (OpenAIProvider, AzureProvider, OllamaProvider, AnthropicProvider, LocalProvider):
        if provider.type not in _TYPES:  # a plugin registered first replaces the built-in
            register(provider.type, provider, oneapi_types=provider.oneapi_types)
