import pytest
from pydantic import ValidationError

from zhiku.config import Settings


def test_seed_aliases_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PG_URL", "postgresql://u:p@db:5432/x")
    monkeypatch.setenv("DEFAULT_ROOT_PSW", "s3cret-pass")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://llm:8000/v1")
    monkeypatch.setenv("CHAT_API_KEY", "sk-1")
    s = Settings()
    assert s.database_url == "postgresql://u:p@db:5432/x" and s.root_password == "s3cret-pass"
    assert s.openai_base_url == "http://llm:8000/v1" and s.chat_api_key == "sk-1" and s.chat_model_configured


def test_defaults() -> None:
    s = Settings(_env_file=None)
    assert s.port == 3000 and s.upload_max_bytes == 100 * 1024 * 1024 and s.profile == "dev"


@pytest.mark.parametrize("password", ["1234", "123456", "change-me"])
def test_placeholder_root_password_refused_in_prod(password: str) -> None:
    with pytest.raises(ValidationError, match="DEFAULT_ROOT_PSW"):
        Settings(profile="prod", root_password=password)
    assert Settings(profile="dev", root_password=password).root_password == password


def test_placeholder_secret_refused_in_prod() -> None:
    with pytest.raises(ValidationError, match="ZHIKU_SECRET_KEY"):
        Settings(profile="prod", secret_key="change-me-to-a-long-random-string")
    assert Settings(profile="prod", secret_key="x" * 40, root_password="a-real-password").profile == "prod"
