"""Settings from OUIPOST_* variables: defaults, and a clear message for every malformed value."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from ouipost.config import SettingsError, load_settings


def test_embedded_defaults(tmp_path: Path) -> None:
    settings = load_settings({"OUIPOST_DATA_DIR": str(tmp_path / "d")})
    assert settings.database_url == f"sqlite+aiosqlite:///{tmp_path / 'd' / 'ouipost.db'}"
    assert (settings.host, settings.port, settings.public_url) == ("127.0.0.1", 8080, "http://127.0.0.1:8080")
    assert settings.sandbox is True
    assert settings.effective_platform_base_url == "http://127.0.0.1:8080/sandbox"
    assert settings.rate_limits == {"starter": 60, "professional": 300, "enterprise": 1200}
    assert (settings.max_json_kb, settings.max_image_mb, settings.max_video_mb, settings.workers) == (1024, 20, 1024, 4)


def test_generated_secret_is_kept_in_the_data_dir_for_its_owner_only(tmp_path: Path) -> None:
    first = load_settings({"OUIPOST_DATA_DIR": str(tmp_path)})
    second = load_settings({"OUIPOST_DATA_DIR": str(tmp_path)})
    assert first.secret_key == second.secret_key and len(first.secret_key) >= 32
    mode = stat.S_IMODE((tmp_path / "secret_key").stat().st_mode)
    assert mode == 0o600


def test_network_credentials_turn_the_sandbox_off_by_default(tmp_path: Path) -> None:
    settings = load_settings({
        "OUIPOST_DATA_DIR": str(tmp_path), "OUIPOST_TWITTER_CLIENT_ID": "id", "OUIPOST_TWITTER_CLIENT_SECRET": "s",
    })
    assert settings.sandbox is False and settings.effective_platform_base_url is None
    assert settings.credentials["twitter"].client_id == "id"


def test_overrides_from_the_command_line_win(tmp_path: Path) -> None:
    settings = load_settings({"OUIPOST_DATA_DIR": str(tmp_path), "OUIPOST_PORT": "9000"}, port=9100)
    assert settings.port == 9100 and settings.public_url == "http://127.0.0.1:9100"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"OUIPOST_PORT": "eighty"}, "OUIPOST_PORT must be a whole number"),
        ({"OUIPOST_PORT": "70000"}, "OUIPOST_PORT must be between 1 and 65535"),
        ({"OUIPOST_DATABASE_URL": "postgresql://x/y"}, "OUIPOST_DATABASE_URL must start with"),
        ({"OUIPOST_DATABASE_URL": "mysql+aiomysql://u:pw@h/db"}, "OUIPOST_SECRET_KEY is required"),
        ({"OUIPOST_SECRET_KEY": "short"}, "at least 32 characters"),
        ({"OUIPOST_STORAGE": "ftp"}, "OUIPOST_STORAGE must be one of local, s3"),
        ({"OUIPOST_STORAGE": "s3"}, "OUIPOST_S3_BUCKET is required"),
        ({"OUIPOST_SANDBOX": "maybe"}, "OUIPOST_SANDBOX must be on/off"),
        ({"OUIPOST_RATE_LIMITS": "starter=fast"}, "OUIPOST_RATE_LIMITS"),
        ({"OUIPOST_PUBLIC_URL": "ftp://x"}, "OUIPOST_PUBLIC_URL must be an http(s) URL"),
        ({"OUIPOST_TWITTER_CLIENT_ID": "id"}, "OUIPOST_TWITTER_CLIENT_SECRET"),
        ({"OUIPOST_MAX_JSON_KB": "0"}, "OUIPOST_MAX_JSON_KB must be between"),
        ({"OUIPOST_STORAGE": "s3", "OUIPOST_S3_BUCKET": "b", "OUIPOST_S3_ENDPOINT_URL": "not a url"},
         "OUIPOST_S3_ENDPOINT_URL must be an http(s) URL"),
        ({"OUIPOST_STORAGE": "s3", "OUIPOST_S3_BUCKET": "b", "OUIPOST_S3_ENDPOINT_URL": "https://bad host!"},
         "OUIPOST_S3_ENDPOINT_URL must be an http(s) URL"),
        ({"OUIPOST_STORAGE": "s3", "OUIPOST_S3_BUCKET": "b", "OUIPOST_S3_ENDPOINT_URL": "http://[::1"},
         "OUIPOST_S3_ENDPOINT_URL must be an http(s) URL"),
        ({"OUIPOST_PACING_ACCOUNT": "myspace=10/1"}, "OUIPOST_PACING_ACCOUNT: unknown network 'myspace'"),
        ({"OUIPOST_PACING_CONCURRENCY": "twitter=many"}, "OUIPOST_PACING_CONCURRENCY"),
    ],
)
def test_malformed_settings_fail_with_a_clear_message(tmp_path: Path, env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings({"OUIPOST_DATA_DIR": str(tmp_path), **env})
    assert message in str(info.value)


def test_database_password_is_not_echoed_in_errors(tmp_path: Path) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings({"OUIPOST_DATA_DIR": str(tmp_path), "OUIPOST_DATABASE_URL": "postgres://u:hunter2@h/db"})
    assert "hunter2" not in str(info.value)


def test_all_problems_are_reported_at_once(tmp_path: Path) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings({"OUIPOST_DATA_DIR": str(tmp_path), "OUIPOST_PORT": "x", "OUIPOST_WORKERS": "-1"})
    assert "OUIPOST_PORT" in str(info.value) and "OUIPOST_WORKERS" in str(info.value)
