"""The TOML configuration: what it decodes to, the errors a bad file gets, the examples."""

from __future__ import annotations

from pathlib import Path

import pytest

from translator._compat import Mode, Treatment
from translator._plugins import DEFAULT_PLUGINS, get_plugin_manager
from translator._routing import RouteTable as Router
from translator.config import (
    Config,
    ConfigError,
    Route,
    ServerSettings,
    default_data_dir,
    load_config,
    parse_config,
)
from translator.errors import ModelNotFoundError
from translator.server import TRANSLATOR, create_app

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.toml"))

FULL = """
default_backend = "agent"

[server]
host = "0.0.0.0"
port = 9000
api_keys = ["k"]
compat = "lenient"
data_dir = "/tmp/files"
max_line_size = 100000
max_field_size = 200000

[server.limits]
max_body_bytes = 1000
max_messages = 10
request_timeout = 5

[backends.agent]
plugin = "vlm-agent"
base_url = "http://agent.test/v1"
api_key_env = "AGENT_KEY"
read_timeout = 30
retries = 0
mode = "strict"
matrix = { stream = "emulated", max_tokens = "ignored" }
options = { poll_interval = 0.5 }

[backends.echo]
plugin = "echo"

[[routes]]
model = "vlm-*"
backend = "agent"

[[routes]]
model = "gpt-4o"
backend = "echo"

[fetch]
allow = ["10.0.0.0/8"]
"""


def test_a_full_file_decodes_into_structs() -> None:
    config = parse_config(FULL)
    assert config.default_backend == "agent"
    server = config.server
    assert (server.host, server.port, server.api_keys) == ("0.0.0.0", 9000, ["k"])
    assert server.compat is Mode.LENIENT
    assert server.data_dir == "/tmp/files"
    assert (server.max_line_size, server.max_field_size) == (100000, 200000)
    assert server.limits.max_body_bytes == 1000
    assert server.limits.max_messages == 10
    assert server.limits.request_timeout == 5.0
    agent = config.backends["agent"]
    assert agent.plugin == "vlm-agent"
    assert agent.base_url == "http://agent.test/v1"
    assert agent.read_timeout == 30.0
    assert agent.retries == 0
    assert agent.matrix == {"stream": Treatment.EMULATED, "max_tokens": Treatment.IGNORED}
    assert agent.options == {"poll_interval": 0.5}
    assert config.routes == [Route("vlm-*", "agent"), Route("gpt-4o", "echo")]
    assert config.fetch is not None
    assert config.fetch.allow == ["10.0.0.0/8"]


def test_an_empty_file_serves_echo() -> None:
    config = parse_config("")
    assert list(config.backends) == ["echo"]
    assert config.fallback_backend == "echo"
    assert config.routes == [Route("echo", "echo")]  # so that GET /v1/models lists one
    assert config.server == ServerSettings()


def test_the_default_config_keeps_files_where_asked() -> None:
    config = Config.default(data_dir="/srv/files")
    assert config.server.data_dir == "/srv/files"
    assert config.fallback_backend == "echo"


def test_default_data_dir_follows_xdg(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", "/xdg")
    assert default_data_dir() == "/xdg/translator/files"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[server\nport = 1", "not valid TOML"),
        ('[server]\nport = "80"', "'server.port': expected an integer, but got a string"),
        (
            "[server]\nport = 70000",
            "'server.port': integer above maximum value. Expected a value <= 65535",
        ),
        ("[server]\nprot = 80", "server.prot: unknown key"),
        (
            "[server.limits]\nmax_messages = 0",
            "'server.limits.max_messages': integer below minimum",
        ),
        (
            '[server]\ncompat = "loose"',
            "Invalid value for 'server.compat': 'loose'. Supported values are: 'strict' and "
            "'lenient'.",
        ),
        ('[backends.a]\nbase_url = "http://x"', "backends.a.plugin: required key is missing"),
        ('[backends.a]\nplugin = "echo"\nretry = 1', "backends.a.retry: unknown key"),
        ('[backends.a]\nplugin = "echo"\nmode = "open"', "Invalid value for 'backends.a.mode'"),
        (
            '[backends.a]\nplugin = "echo"\nmatrix = { n = "maybe" }',
            "Invalid value for 'backends.a.matrix[...]': 'maybe'",
        ),
        (
            '[backends.a]\nplugin = "echo"\n[[routes]]\nmodel = "m"\nbackend = "b"',
            "routes[0].backend: no backend named 'b' (configured: a)",
        ),
        (
            '[backends.a]\nplugin = "echo"\n[[routes]]\nmodel = "m*x"\nbackend = "a"',
            "routes[0].model: '*' may only end a model pattern",
        ),
        ('[[routes]]\nmodel = "m"', "routes[0].backend: required key is missing"),
        (
            'default_backend = "nope"\n[backends.a]\nplugin = "echo"',
            "default_backend: no backend named 'nope'",
        ),
        ("[fetch]\nallow = 1", "'fetch.allow': expected an array, but got an integer"),
        ("[server]\nmax_field_size = 0", "'server.max_field_size': integer below minimum value"),
        (b"[server]\nhost = '\xff'", "not valid TOML: not UTF-8 text"),
    ],
)
def test_a_bad_file_names_the_key_at_fault(text: str | bytes, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, source="my.toml")
    assert str(caught.value).startswith("my.toml: ")
    assert message in str(caught.value)


def test_load_config_reads_a_file(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[backends.x]\nplugin = "echo"\n')
    assert list(load_config(path).backends) == ["x"]
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.toml")


def test_api_keys_from_the_environment() -> None:
    settings = parse_config('[server]\napi_keys = ["a"]\napi_keys_env = "K"').server
    assert settings.resolve_api_keys({"K": " b , c ,"}) == ("a", "b", "c")
    with pytest.raises(ConfigError, match="K, which is not set"):
        settings.resolve_api_keys({})
    with pytest.raises(ConfigError, match="holds no keys"):
        ServerSettings(api_keys_env="K").resolve_api_keys({"K": " , "})


def test_an_unknown_plugin_is_a_config_error() -> None:
    config = parse_config('[backends.a]\nplugin = "no-such-plugin"')
    with pytest.raises(ConfigError, match="no plugin named 'no-such-plugin'"):
        create_app(config, plugin_manager=get_plugin_manager(entry_points=False))


# -- routing ---------------------------------------------------------------------------


def test_router_prefers_exact_then_longest_prefix_then_default() -> None:
    router = Router(
        [Route("gpt-4o", "b"), Route("gpt-*", "a"), Route("gpt-4*", "b"), Route("x", "c")],
        ["a", "b", "c"],
        default="c",
    )
    assert router.backend_for("gpt-4o") == "b"
    assert router.backend_for("gpt-4-turbo") == "b"
    assert router.backend_for("gpt-3.5") == "a"
    assert router.backend_for("a") == "c"  # a backend's name is no model of its own
    assert router.backend_for("anything") == "c"
    assert router.exact() == [("gpt-4o", "b"), ("x", "c")]


def test_router_names_the_backends_nothing_leads_to() -> None:
    router = Router([Route("m", "a"), Route("p-*", "b")], ["a", "b", "c", "d"], default="d")
    assert router.unreached() == ["c"]


def test_router_without_a_default_refuses_unknown_models() -> None:
    router = Router([Route("m", "a")], ["a"])
    with pytest.raises(ModelNotFoundError) as caught:
        router.backend_for("other")
    assert caught.value.status == 404
    assert caught.value.code == "model_not_found"
    assert caught.value.param == "model"


# -- the examples ------------------------------------------------------------------------


def test_there_is_an_example_for_each_built_in_backend() -> None:
    plugins = {b.plugin for path in EXAMPLES for b in load_config(path).backends.values()}
    assert plugins == {name for name, _ in DEFAULT_PLUGINS}


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_each_example_loads_and_serves(path: Path) -> None:
    config = load_config(path)
    environ = {"TRANSLATOR_API_KEYS": "k"}
    app = create_app(config, plugin_manager=get_plugin_manager(entry_points=False), environ=environ)
    translator = app[TRANSLATOR]
    assert set(translator.backends) == set(config.backends)
    for name, settings in config.backends.items():
        backend = translator.backend(name)
        for field, treatment in settings.matrix.items():
            assert backend.matrix.treatment(field, True) is treatment
    for route in config.routes:
        model = route.model.rstrip("*") + ("x" if route.is_prefix else "")
        assert Router(config.routes, list(config.backends)).backend_for(model) == route.backend
