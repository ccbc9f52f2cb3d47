"""Provider adapters, one module per wire API, all behind ``providers.base.Provider``.

This registry is the single list of channel types: channel validation, the CLI and the OneAPI import
read it. Built-ins register through :func:`register`, the same call a plugin would make.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from zhiku.gateway.providers.base import Provider, ProviderContext

ProviderFactory = Callable[[ProviderContext], Provider]


@dataclass(frozen=True)
class ChannelType:
    name: str
    factory: ProviderFactory
    oneapi_types: frozenset[int]  # OneAPI's channel type numbers this provider speaks for


_TYPES: dict[str, ChannelType] = {}


def register(channel_type: str, factory: ProviderFactory, *, oneapi_types: Iterable[int] = ()) -> None:
    _TYPES[channel_type] = ChannelType(channel_type, factory, frozenset(oneapi_types))


def channel_types() -> list[str]:
    _register_builtins()
    return sorted(_TYPES)


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
