"""Azure OpenAI: OpenAI's wire format at ``{base}/openai/deployments/{deployment}/{endpoint}?api-version=…``.

The deployment is the upstream model name (use the channel's model mapping to map a model to a
deployment name); the API version comes from the channel's ``config.api_version``. The key travels in
the ``api-key`` header. Error bodies are OpenAI-shaped, so classification is shared.
"""

from __future__ import annotations

from urllib.parse import quote

from zhiku.gateway.domain import ENDPOINT_CHAT, ENDPOINT_COMPLETIONS, ENDPOINT_EMBEDDINGS
from zhiku.gateway.providers.base import ChannelFields, ConfigField, UpstreamRequest
from zhiku.gateway.providers.openai import OpenAIProvider

DEFAULT_API_VERSION = "2024-10-21"


def deployment_url(base_url: str, deployment: str, endpoint: str, api_version: str) -> str:
    base = base_url.strip().rstrip("/")
    return (f"{base}/openai/deployments/{quote(deployment, safe='')}/{endpoint}"
            f"?api-version={quote(api_version, safe='')}")


class AzureProvider(OpenAIProvider):
    type = "azure"
    oneapi_types = frozenset({3})  # OneAPI's Azure OpenAI
    endpoints = frozenset({ENDPOINT_CHAT, ENDPOINT_COMPLETIONS, ENDPOINT_EMBEDDINGS})
    channel_fields = ChannelFields(base_url_required=True,
                                   config=(ConfigField("api_version", DEFAULT_API_VERSION),))

    def url(self, request: UpstreamRequest) -> str:
        version = str(request.channel.config.get("api_version") or DEFAULT_API_VERSION)
        return deployment_url(request.channel.base_url, str(request.body.get("model", "")), request.endpoint,
                              version)

    def headers(self, request: UpstreamRequest) -> dict[str, str]:
        headers = {"Content-Type": "application/json",
                   "Accept": "text/event-stream" if request.stream else "application/json"}
        if request.channel.key:
            headers["api-key"] = request.channel.key
        return headers
