"""``translator translate | matrix | backends | serve``, as a user runs them."""

from __future__ import annotations

import json
import shlex
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from benchmarks.serve_process import start_serve
from translator._cli import main

ROOT = Path(__file__).resolve().parents[2]
HELLO = {"model": "vlm-agent-1", "messages": [{"role": "user", "content": "Hello"}]}


def write(tmp_path: Path, name: str, body: Any) -> str:
    path = tmp_path / name
    path.write_text(body if isinstance(body, str) else json.dumps(body))
    return str(path)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


# -- translate --------------------------------------------------------------------------


def test_translate_prints_the_native_request_and_the_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    request = write(tmp_path, "r.json", {**HELLO, "max_tokens": 5, "temperature": 0})
    status, out, err = run(capsys, "translate", request, "--backend", "vlm-agent")
    assert status == 0
    native = json.loads(out)
    assert native["batch"] is True
    assert "Hello" in native["config"]["prompt"]
    assert "max_tokens" not in out
    assert err == (
        "max_tokens: dropped; vlm-agent ignores it (accepted, but the full output is returned)\n"
    )


def test_translate_says_when_nothing_was_dropped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = run(
        capsys, "translate", write(tmp_path, "r.json", HELLO), "--backend", "echo"
    )
    assert status == 0
    assert json.loads(out)["messages"] == HELLO["messages"]
    assert "every field sent is supported" in err


def test_a_rejected_request_exits_2_with_the_openai_error_on_stdout(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    request = write(tmp_path, "r.json", {**HELLO, "n": 2})
    status, out, err = run(capsys, "translate", request, "--backend", "vlm-agent")
    assert status == 2
    error = json.loads(out)["error"]
    assert error["param"] == "n"
    assert error["code"] == "unsupported_value"
    assert error["type"] == "invalid_request_error"
    assert "rejected" in err


def test_lenient_mode_drops_and_reports_instead(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    request = write(tmp_path, "r.json", {**HELLO, "logprobs": True})
    status, out, err = run(
        capsys, "translate", request, "--backend", "vlm-agent", "--compat", "lenient"
    )
    assert status == 0
    assert "logprobs" not in out
    assert err.startswith("logprobs: dropped in lenient mode; vlm-agent rejects it (")


def test_an_invalid_request_exits_2_with_its_param(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    request = write(tmp_path, "r.json", {"model": "m", "messages": [{"role": "user"}]})
    status, out, _ = run(capsys, "translate", request, "--backend", "echo")
    assert status == 2
    assert json.loads(out)["error"]["param"] == "messages[0].content"
    status, out, _ = run(
        capsys, "translate", write(tmp_path, "bad.json", "{nope"), "--backend", "echo"
    )
    assert status == 2
    assert json.loads(out)["error"]["code"] == "invalid_json"


def test_translate_uses_a_configured_backend(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write(
        tmp_path,
        "c.toml",
        '[backends.strict-echo]\nplugin = "echo"\nmatrix = { seed = "rejected" }\n',
    )
    request = write(tmp_path, "r.json", {**HELLO, "seed": 3})
    status, out, _ = run(
        capsys, "translate", request, "--backend", "strict-echo", "--config", config
    )
    assert status == 2
    assert json.loads(out)["error"]["param"] == "seed"


def test_translate_reads_stdin(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    class Stdin:
        buffer = __import__("io").BytesIO(json.dumps(HELLO).encode())

    monkeypatch.setattr(sys, "stdin", Stdin)
    status, out, _ = run(capsys, "translate", "-", "--backend", "echo")
    assert status == 0
    assert json.loads(out)["model"] == "vlm-agent-1"


def test_unknown_backend_or_file_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    request = write(tmp_path, "r.json", HELLO)
    status, out, err = run(capsys, "translate", request, "--backend", "nope")
    assert (status, out) == (1, "")
    assert "no backend 'nope'" in err
    status, _, err = run(capsys, "translate", str(tmp_path / "missing.json"), "--backend", "echo")
    assert status == 1
    assert "cannot read" in err
    bad = write(tmp_path, "bad.toml", "[server]\nprot = 1\n")
    status, _, err = run(capsys, "translate", request, "--backend", "echo", "--config", bad)
    assert status == 1
    assert "server.prot: unknown key" in err


def test_translate_with_a_plugin_that_needs_settings_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    request = tmp_path / "r.json"
    request.write_text(json.dumps(HELLO))
    status = main(["translate", str(request), "--backend", "openai-compatible"])
    assert status == 1
    err = capsys.readouterr().err
    assert err.startswith("translator: ")
    assert "base_url" in err


def test_matrix_of_a_config_its_plugin_refuses_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[backends.up]\nplugin = "openai-compatible"\n')
    status = main(["matrix", "--config", str(config)])
    assert status == 1
    assert capsys.readouterr().err.startswith("translator: ")


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["translate", "{request}", "--backend", "echo", "--config", "{binary}"], "not UTF-8"),
        (["translate", "{tmp}", "--backend", "echo"], "cannot read"),
        (["translate", "{request}", "--backend", "echo", "--config", "{tmp}"], "cannot read"),
        (["matrix", "--backend", "openai-compatible"], "needs a base_url"),
        (["matrix", "--backend", "up", "--config", "{refused}"], "needs a base_url"),
        (["serve", "--config", "{refused}"], "needs a base_url"),
    ],
)
def test_every_failure_is_one_line_on_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], expected: str
) -> None:
    paths = {
        "request": write(tmp_path, "r.json", HELLO),
        "binary": str(tmp_path / "bin.toml"),
        "refused": write(tmp_path, "up.toml", '[backends.up]\nplugin = "openai-compatible"\n'),
        "tmp": str(tmp_path),
    }
    (tmp_path / "bin.toml").write_bytes(b"[server]\nhost = '\xff'\n")
    status, out, err = run(capsys, *(arg.format(**paths) for arg in argv))
    assert (status, out) == (1, "")
    assert err.startswith("translator: ")
    assert err.count("\n") == 1
    assert expected in err


# -- matrix and backends ---------------------------------------------------------------


def test_matrix_as_json_has_every_built_in_backend(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "matrix", "--format", "json")
    assert status == 0
    backends = json.loads(out)["backends"]
    assert [b["name"] for b in backends] == ["echo", "ollama", "openai-compatible", "vlm-agent"]
    rules = {r["field"]: r for r in backends[3]["rules"] if r["when"] is None}
    assert rules["max_tokens"]["treatment"] == "ignored"


def test_matrix_of_one_backend_as_a_table_and_rst(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "matrix", "--backend", "vlm-agent")
    assert status == 0
    assert out.startswith("vlm-agent")
    assert "max_tokens" in out
    assert "ollama" not in out
    status, out, _ = run(capsys, "matrix", "--backend", "vlm-agent", "--format", "rst")
    assert status == 0
    assert ".. list-table::" in out


def test_matrix_from_a_config_shows_its_overrides(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write(
        tmp_path,
        "c.toml",
        '[backends.agent]\nplugin = "vlm-agent"\nmatrix = { stream = "emulated" }\n',
    )
    status, out, _ = run(capsys, "matrix", "--config", config, "--format", "json")
    assert status == 0
    (backend,) = json.loads(out)["backends"]
    assert backend["name"] == "agent"
    stream = {r["treatment"] for r in backend["rules"] if r["field"] == "stream"}
    assert "emulated" in stream
    assert "rejected" not in stream


def test_backends_lists_the_installed_plugins(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "backends")
    assert status == 0
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "PLUGIN", "DISTRIBUTION", "DESCRIPTION"]
    names = [line.split()[0] for line in lines[1:]]
    assert {"echo", "ollama", "openai-compatible", "vlm-agent"} <= set(names)


def test_backends_claims_no_distribution_that_is_not_installed(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from importlib import metadata

    def missing(name: str) -> str:
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "version", missing)
    status, out, _ = run(capsys, "backends")
    assert status == 0
    echo = next(line for line in out.splitlines() if line.startswith("echo "))
    assert echo.split()[2] == "-"
    assert "openai-translator" not in out


def test_version_and_usage(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["--version"])
    assert caught.value.code == 0
    assert capsys.readouterr().out.startswith("translator ")
    with pytest.raises(SystemExit) as caught:
        main([])
    assert caught.value.code == 2


# -- serve -----------------------------------------------------------------------------


def test_serve_refuses_a_bad_config_before_listening(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = write(
        tmp_path,
        "bad.toml",
        '[backends.a]\nplugin = "echo"\n[[routes]]\nmodel = "m"\nbackend = "b"\n',
    )
    status, _, err = run(capsys, "serve", "--config", bad)
    assert status == 1
    assert "routes[0].backend: no backend named 'b'" in err


def _http(url: str, body: Any = None, headers: dict[str, str] | None = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers=headers or {})
    if data is not None:
        request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


@pytest.fixture
def served(tmp_path: Path) -> Any:
    """Start ``translator serve`` in a subprocess; yields ``start(*args) -> (process, base)``."""
    processes: list[subprocess.Popen[str]] = []

    def start(*args: str) -> tuple[subprocess.Popen[str], str, str]:
        env = {"XDG_DATA_HOME": str(tmp_path / "xdg")}
        served = start_serve(*args, cwd=tmp_path, env=env)
        processes.append(served.process)
        return served.process, served.base, served.banner

    yield start
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_serve_with_no_config_answers_every_model_and_keeps_files_on_disk(
    served: Any, tmp_path: Path
) -> None:
    process, base, banner = served()
    assert base.startswith("http://127.0.0.1:")
    assert base.endswith("/v1/openai")
    assert f"curl -s {base}/chat/completions" in banner
    assert "python -m pip install openai" in banner  # the SDK example needs it
    assert f'openai.OpenAI(base_url="{base}"' in banner
    reply = _http(f"{base}/chat/completions", {**HELLO, "model": "any-model"})
    assert reply["choices"][0]["message"]["content"] == "Hello"
    assert _http(base.replace("/v1/openai", "/health")) == {"status": "ok"}
    # The example printed for pasting works as printed.
    pasted = shlex.split(banner.split("\n  python ", 1)[1].strip())
    example = subprocess.run(
        [sys.executable, *pasted], capture_output=True, text=True, timeout=60, check=True
    )
    assert example.stdout == "Hello\n"

    import openai

    client = openai.OpenAI(base_url=base, api_key="unused", max_retries=0)
    uploaded = client.files.create(file=("a.txt", b"kept"), purpose="assistants")
    client.close()
    stored = list((tmp_path / "xdg" / "translator" / "files").iterdir())
    assert any(p.name.startswith(uploaded.id) for p in stored)

    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=30) == 0


def test_serve_with_a_config_and_keys(served: Any, tmp_path: Path) -> None:
    config = write(
        tmp_path,
        "c.toml",
        '[server]\napi_keys = ["sekret"]\n[backends.e]\nplugin = "echo"\n'
        '[[routes]]\nmodel = "my-model"\nbackend = "e"\n',
    )
    process, base, banner = served("--config", config)
    assert "my-model" in banner
    assert "Authorization: Bearer <your key>" in banner
    with pytest.raises(urllib.error.HTTPError) as caught:
        _http(f"{base}/chat/completions", {**HELLO, "model": "my-model"})
    assert caught.value.code == 401
    reply = _http(
        f"{base}/chat/completions",
        {**HELLO, "model": "my-model"},
        {"Authorization": "Bearer sekret"},
    )
    assert reply["model"] == "my-model"
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0


@pytest.mark.parametrize(
    ("toml", "model"),
    [
        ("", "echo"),
        ('[backends.a]\nplugin = "echo"\n[[routes]]\nmodel = "x-*"\nbackend = "a"\n', "x-"),
        (
            '[backends.a]\nplugin = "echo"\n[backends.b]\nplugin = "echo"\n'
            '[[routes]]\nmodel = "x-*"\nbackend = "a"\n',
            "x-",
        ),
    ],
)
def test_the_banner_model_is_one_the_server_routes(toml: str, model: str) -> None:
    from translator._cli import _example_model
    from translator._routing import RouteTable as Router
    from translator.config import parse_config

    config = parse_config(toml)
    assert _example_model(config) == model
    router = Router(config.routes, config.backends, config.fallback_backend)
    router.backend_for(model)  # no ModelNotFoundError
