"""The provider registry is the one list of channel types: validation, the CLI and the OneAPI import
read it, and a plugin registers through the same call as the built-ins."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from zhiku.gateway import providers
from zhiku.gateway.admin.oneapi import plan_channel
from zhiku.gateway.admin.schemas import ChannelCreate
from zhiku.gateway.providers.openai import OpenAIProvider

BUILT_INS = ["anthropic", "azure", "local", "ollama", "openai"]


class EchoProvider(OpenAIProvider):  # a plugin: any factory of a Provider will do
    type = "echo"
    oneapi_types = frozenset({24})  # OneAPI's "Gemini" type, which no built-in speaks


@pytest.fixture
def plugin() -> Iterator[None]:
    providers.register("echo", EchoProvider, oneapi_types=EchoProvider.oneapi_types)
    yield
    providers._TYPES.pop("echo")


def test_built_ins_register_through_the_registry() -> None:
    assert providers.channel_types() == BUILT_INS
    assert [providers.channel_type_for_oneapi(n) for n in (1, 3, 14, 30, 50, 24)] == [
        "openai", "azure", "anthropic", "ollama", "openai", None]


def test_channel_validation_reads_the_registry(plugin: None) -> None:
    assert ChannelCreate(type="echo", name="e", models=["m"]).type == "echo"
    providers._TYPES.pop("echo")
    with pytest.raises(ValidationError, match="unknown channel type 'echo'; one of anthropic, azure"):
        ChannelCreate(type="echo", name="e", models=["m"])
    providers.register("echo", EchoProvider)  # for the fixture's teardown


def test_oneapi_import_maps_types_through_the_registry(plugin: None) -> None:
    row = {"id": 7, "type": 24, "name": "gemini", "key": "k", "base_url": "http://g", "models": "gemini-pro",
           "status": 1}
    assert plan_channel(row).values["type"] == "echo"
    assert plan_channel(row).values["status"] == "enabled"


def test_oneapi_import_keeps_a_type_nobody_serves_switched_off() -> None:
    row = {"id": 8, "type": 24, "name": "gemini", "key": "k", "base_url": "http://g", "models": "gemini-pro",
           "status": 1}
    planned = plan_channel(row).values
    assert planned["status"] == "manual_disabled" and "24 (Gemini) has no Zhiku provider" in planned["status_reason"]


def test_the_cli_lists_the_registered_types() -> None:
    from zhiku.cli.main import app

    result = CliRunner().invoke(app, ["gateway", "channels", "add", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0 and " | ".join(BUILT_INS) in result.output


def test_channel_fields_come_from_the_registry(plugin: None) -> None:
    azure = providers.channel_fields("azure")
    assert azure.base_url_required and [f.name for f in azure.config] == ["api_version", "test_model"]
    assert not providers.channel_fields("local").uses_key
    assert providers.channel_fields("anthropic").config[1] == providers.ConfigField("max_tokens", "4096", True)
    echo = providers.channel_fields("echo")  # a plugin inherits its base's fields
    assert echo.base_url_default == "https://api.openai.com"
    assert [f.name for f in echo.config] == ["test_model"]
