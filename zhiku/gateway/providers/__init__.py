"""Provider adapters, one module per wire API, all behind ``providers.base.Provider``.

Built-ins register through :func:`register`, the same call a plugin would make.
"""

from __future__ import annotations

from collections.abc import Callable

from zhiku.gateway.providers.base import Provider, ProviderContext

ProviderFactory = Callable[[ProviderContext], Provider]
_FACTORIES: dict[str, ProviderFactory] = {}


def register(channel_type: str, factory: ProviderFactory) -> None:
    _FACTORIES[channel_type] = factory


def channel_types() -> list[str]:
    _register_builtins()
    return sorted(_FACTORIES)


def build_providers(context: ProviderContext) -> dict[str, Provider]:
    _register_builtins()
    return {name: factory(context) for name, factory in _FACTORIES.items()}


def _register_builtins() -> None:
    if _FACTORIES.keys() >= {"openai", "azure", "ollama", "anthropic", "local"}:
        return
    from zhiku.gateway.providers.anthropic import AnthropicProvider
    from zhiku.gateway.providers.azure import AzureProvider
    from zhiku.gateway.providers.local import LocalProvider
    from zhiku.gateway.providers.ollama import OllamaProvider
    from zhiku.gateway.providers.openai import OpenAIProvider

    for factory in (OpenAIProvider, AzureProvider, OllamaProvider, AnthropicProvider, LocalProvider):
        _FACTORIES.setdefault(factory.type, factory)
