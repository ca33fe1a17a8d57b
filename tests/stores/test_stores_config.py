"""The ``[stores]`` table: what each setting builds, and what a bad one says."""

from __future__ import annotations

from pathlib import Path

import openai
import pytest

from benchmarks.redis_server import RedisServer
from translator.config import ConfigError, parse_config
from translator.server import create_app, serving
from translator.stores import (
    DiskFileStore,
    MemoryFileStore,
    MemorySessionStore,
    SQLiteSessionStore,
)
from translator.stores._redis_cache import RedisCache
from translator.stores._redis_files import RedisFileStore
from translator.stores._redis_sessions import RedisSessionStore
from translator.stores._settings import StoreSettings, open_stores


async def test_without_a_stores_table_both_stores_are_local_and_durable(tmp_path: Path) -> None:
    config = parse_config("")
    assert config.stores == StoreSettings()
    stores = open_stores(config.stores, tmp_path)
    assert isinstance(stores.sessions, SQLiteSessionStore)
    assert stores.sessions.path == tmp_path / "sessions.sqlite3"
    assert isinstance(stores.files, DiskFileStore)
    assert stores.files.directory == tmp_path
    assert stores.cache is None
    await stores.aclose()


async def test_memory_stores_are_kept_in_the_process(tmp_path: Path) -> None:
    settings = parse_config('[stores]\nsessions = "memory"\nfiles = "memory"\n').stores
    assert not settings.shared
    stores = open_stores(settings, tmp_path)
    assert isinstance(stores.sessions, MemorySessionStore)
    assert isinstance(stores.files, MemoryFileStore)
    await stores.aclose()


async def test_redis_stores_share_one_connection_pool_and_the_cache(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    settings = parse_config(
        f'[stores]\nsessions = "{redis_server.url}"\nfiles = "{redis_server.url}"\n'
        'prefix = "deploy-1:"\ntimeout = 0.5\nsession_ttl = 60\nfile_ttl = 30\n'
    ).stores
    assert settings.shared
    stores = open_stores(settings, tmp_path)
    assert isinstance(stores.sessions, RedisSessionStore)
    assert isinstance(stores.files, RedisFileStore)
    assert isinstance(stores.cache, RedisCache)
    assert stores.sessions.link is stores.files.link is stores.cache.link
    assert (stores.sessions.link.prefix, stores.sessions.link.timeout) == ("deploy-1:", 0.5)
    assert (stores.sessions.idle_ttl, stores.files.ttl) == (60, 30)
    await stores.aclose()


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('sessions = "mongodb://x"', "stores.sessions: 'mongodb://x' is no store"),
        ('files = "disk"', "stores.files: 'disk' is no store"),
        ("timeout = 0", "stores.timeout"),
        ("sessoins = 'memory'", "stores.sessoins: unknown key"),
    ],
)
def test_a_bad_stores_table_names_the_key(table: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(f"[stores]\n{table}\n", source="c.toml")
    assert str(caught.value).startswith("c.toml: ")
    assert message in str(caught.value)


async def test_the_redis_password_comes_from_the_variable_named(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    settings = StoreSettings(sessions=redis_server.url, password_env="STORE_PASSWORD")
    with pytest.raises(ValueError, match="STORE_PASSWORD, which is not set"):
        open_stores(settings, tmp_path, environ={})
    stores = open_stores(settings, tmp_path, environ={"STORE_PASSWORD": "sekret"})
    assert isinstance(stores.sessions, RedisSessionStore)
    assert stores.sessions.link.client.connection_pool.connection_kwargs["password"] == "sekret"
    await stores.aclose()


async def test_with_keys_two_servers_on_one_redis_hold_a_key_to_its_file_quota(
    redis_server: RedisServer, redis_prefix: str
) -> None:
    toml = (
        '[server]\napi_keys = ["key-a", "key-b"]\n'
        "[server.limits]\nmax_files_per_key = 1\n"
        f'[stores]\nsessions = "memory"\nfiles = "{redis_server.url}"\nprefix = "{redis_prefix}"\n'
    )
    async with (
        serving(create_app(parse_config(toml))) as one,
        serving(create_app(parse_config(toml))) as two,
    ):
        a1 = openai.AsyncOpenAI(base_url=f"{one}/v1", api_key="key-a", max_retries=0)
        a2 = openai.AsyncOpenAI(base_url=f"{two}/v1", api_key="key-a", max_retries=0)
        b2 = openai.AsyncOpenAI(base_url=f"{two}/v1", api_key="key-b", max_retries=0)
        try:
            await a1.files.create(file=("a.txt", b"a"), purpose="user_data")
            with pytest.raises(openai.APIStatusError) as caught:
                await a2.files.create(file=("b.txt", b"b"), purpose="user_data")
            assert caught.value.status_code == 413
            assert isinstance(caught.value.body, dict)
            assert caught.value.body["code"] == "file_quota_exceeded"
            await b2.files.create(file=("c.txt", b"c"), purpose="user_data")
        finally:
            for client in (a1, a2, b2):
                await client.close()
