"""JSON files, imported as FastGPT does: the text of the document, pretty-printed."""

from __future__ import annotations

import json

from zhiku.errors import UnsupportedFile
from zhiku.knowledge.decode import read_text
from zhiku.knowledge.parsers import ParsedDocument, register_parser


class JsonParser:
    name = "json"
    extensions: tuple[str, ...] = (".json",)

    def parse(self, data: bytes, filename: str) -> ParsedDocument:
        reading = read_text(data)
        try:
            text = json.dumps(json.loads(reading.text), ensure_ascii=False, indent=2)
        except ValueError as exc:
            raise UnsupportedFile(f"{filename} is not valid JSON ({exc}).", code="json_invalid") from exc
        except RecursionError as exc:
            raise UnsupportedFile(f"{filename} is nested too deeply to read.", code="json_invalid") from exc
        return ParsedDocument(text=text, format="text", metadata=reading.metadata)


register_parser(JsonParser())
