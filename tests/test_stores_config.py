"""The ``[stores]`` table: what each setting builds, and what a bad one says."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.redis_server import RedisServer
from translator.config import ConfigError, parse_config
from translator.stores import (
    DiskFileStore,
    MemoryFileStore,
    MemorySessionStore,
    SQLiteSessionStore,
)
from translator.stores.redis_cache import RedisCache
from translator.stores.redis_files import RedisFileStore
from translator.stores.redis_sessions import RedisSessionStore
from translator.stores.settings import StoreSettings, open_stores


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
