"""The ``openai-compatible`` backend: any upstream that speaks the Chat Completions API.

vLLM, the llama.cpp server, LM Studio, Ollama's ``/v1``, or a hosted agents
endpoint. ``base_url`` is the upstream's API root (``http://host:8000/v1``);
requests go to ``POST {base_url}/chat/completions`` with
``Authorization: Bearer {api_key}``.

The request sent is the OpenAI JSON the client sent, after the matrix.
By default everything in the OpenAI API passes through, except what the
canonical response cannot carry back (log probabilities, audio output). The
VLM agents extensions are not sent unless the configuration forwards them
(``matrix = {session_id = "supported", vlmrun = "supported"}``): until then the
translator keeps the conversation of a ``session_id`` (or
``vlmrun.metadata.session_id``, honouring ``allow_retention``), so those rows
are emulated, and ``vlmrun.domain`` is dropped and reported. The extension
content parts (``input_file``, ``video_url``, ``audio_url``, ``file_url``) are
refused unless the matrix allows them. Top-level fields the canonical model
does not know (``top_k``, ``chat_template_kwargs``, ...) pass through for the
upstream to judge; ``options.unknown_fields`` changes that.

Files uploaded to the translator's own ``/v1/files`` are unknown upstream: a
``file`` part naming one by ``file_id`` is sent with the content inline
instead (``file_data``, a data URI, and ``filename``), and so is an
``input_file`` part naming one, as a ``file`` part, when the matrix lets
``input_file`` through. An id the translator does not know is the upstream's
own and passes unchanged.

Options: ``headers`` (extra request headers), ``model`` (the upstream model
name, or a table from the requested name to the upstream's),
``unknown_fields`` (``supported`` | ``ignored`` | ``rejected``) and
``keeps_sessions`` (whether the upstream keeps conversation state; by default
true exactly when ``session_id`` is forwarded).

Streams are read as server-sent events, incrementally; a stream that ends
without ``data: [DONE]`` is an error, never a clean stop. Upstream errors,
before or inside a stream, are passed through with the upstream's message,
type, param, code and (for a 4xx) status; a 401 or 403 is the upstream
refusing the configured ``api_key`` and becomes a 502 (see :mod:`translator.http`).

A chat completion creates nothing upstream, so it is sent as idempotent: it is
retried after a 502, a 504 or a connection lost mid-request too. A turn of a
session the upstream keeps (``session_id`` forwarded) is not, since a repeat
could add it to the conversation twice.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Callable
from typing import Any

import msgspec
from msgspec import UNSET

from translator.plugin_api import (
    REQUEST_FIELDS,
    ROLES,
    Backend,
    BackendContext,
    BackendFactory,
    BackendSettings,
    BoundClient,
    ChatChunk,
    ChatRequest,
    ChatResponse,
    FileData,
    FilePart,
    FileSource,
    InputFilePart,
    MalformedUpstreamError,
    Matrix,
    NeedsIOError,
    Rule,
    Treatment,
    UpstreamDetail,
    UpstreamStatusError,
    UserMessage,
    VlmRun,
    emulated,
    encode_request,
    hookimpl,
    ignored,
    is_file_id,
    new_completion_id,
    now,
    rejected,
    supported,
)

__all__ = [
    "MATRIX",
    "OpenAICompatBackend",
    "OpenAICompatFactory",
    "Options",
    "SSEDecoder",
    "SSEEvent",
    "parse_error",
]

PLUGIN = "openai-compatible"

_NOT_CARRIED = {
    "logprobs": "log probabilities are not carried back in the canonical response",
    "top_logprobs": "log probabilities are not carried back in the canonical response",
    "audio": "audio output is not carried back in the canonical response",
    "modalities": "only text output is carried back; text is always produced",
}
_EXTENSION_PARTS = ("input_file", "video_url", "audio_url", "file_url")
_KEPT = "the translator keeps the conversation"
_SESSION_ROW = emulated("session_id", _KEPT)
_VLMRUN_ROW = supported("vlmrun", "decided part by part; 'supported' forwards it whole")
_VLMRUN_PARTS = (
    ignored("vlmrun.domain", "a VLM agents extension; forward vlmrun with 'supported'"),
    emulated("vlmrun.metadata", f"{_KEPT} and honours allow_retention"),
)
_OWN_ROWS = {"session_id": _SESSION_ROW, "vlmrun": _VLMRUN_ROW}
_VLMRUN_FIELDS = VlmRun.__struct_fields__

_ROWS: list[Rule] = [
    *(
        _OWN_ROWS[f]
        if f in _OWN_ROWS
        else ignored(f, _NOT_CARRIED[f])
        if f in _NOT_CARRIED
        else supported(f, "passed through")
        for f in REQUEST_FIELDS
    ),
    *_VLMRUN_PARTS,
    *(supported(f"role.{r}", "passed through") for r in ROLES),
    *(
        supported(f"content.{t}", "passed through")
        for t in ("text", "image_url", "input_audio", "file", "refusal")
    ),
    *(
        rejected(
            f"content.{t}", "not in the OpenAI API; set it supported for an upstream that takes it"
        )
        for t in _EXTENSION_PARTS
        if t != "input_file"
    ),
    rejected(
        "content.input_file",
        "not in the OpenAI API; set it supported for an upstream that takes it "
        "(a file uploaded here is then sent inline, as a file part)",
    ),
]
MATRIX = Matrix(PLUGIN, _ROWS, unknown=Treatment.SUPPORTED)
"""The default matrix; the configuration's ``matrix`` table overrides rows of it."""


def fitted(matrix: Matrix, *, keeps_sessions: bool) -> Matrix:
    """``matrix`` as it holds for a backend that does, or does not, keep sessions upstream.

    The default ``vlmrun.<part>`` rows give way to a configured ``vlmrun`` row
    (``vlmrun = "supported"`` forwards it whole). When the upstream keeps the
    sessions, the translator keeps no conversation, so the default emulated
    ``session_id`` and ``vlmrun.metadata`` rows become ignored.
    """
    rules = [_reworded(r) for r in matrix.rules]
    if _VLMRUN_ROW not in rules:
        rules = [r for r in rules if r not in _VLMRUN_PARTS]
    if keeps_sessions:
        kept = (_SESSION_ROW, _VLMRUN_PARTS[1])
        note = "the upstream keeps the session and is not sent this; forward it with 'supported'"
        rules = [ignored(r.field, note) if r in kept else r for r in rules]
    if rules == list(matrix.rules):
        return matrix
    return Matrix(matrix.backend, rules, unknown=matrix.unknown, mode=matrix.mode)


_DEFAULT_ROWS = {r.field: r for r in (_SESSION_ROW, *_VLMRUN_PARTS)}
_SAYS = {
    Treatment.SUPPORTED: "forwarded to the upstream",
    Treatment.IGNORED: "dropped, not sent",
    Treatment.REJECTED: "refused",
}


def _reworded(rule: Rule) -> Rule:
    """A default row given another treatment no longer says the default's reason."""
    default = _DEFAULT_ROWS.get(rule.field)
    says = _SAYS.get(rule.treatment)
    if default is None or says is None or rule.treatment is default.treatment:
        return rule
    return Rule(rule.field, rule.treatment, f"{says} (set in the configuration)", rule.when)


class Options(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The ``options`` table of an ``openai-compatible`` backend."""

    headers: dict[str, str] = msgspec.field(default_factory=dict)
    model: str | dict[str, str] | None = None
    unknown_fields: Treatment = Treatment.SUPPORTED
    keeps_sessions: bool | None = None


# -- server-sent events -------------------------------------------------------


class SSEEvent(msgspec.Struct, frozen=True):
    """One dispatched event: its ``event`` type (``message`` by default) and data."""

    data: bytes
    event: str = "message"


class SSEDecoder:
    """An incremental server-sent events parser: feed it bytes as they arrive.

    Lines may end in ``\\n``, ``\\r\\n`` or ``\\r``, split anywhere between
    feeds. Comments (``: keepalive``) and ``id``/``retry`` fields are skipped;
    ``data`` lines of one event are joined with ``\\n``. An event (or a line
    still waiting for its end) longer than ``max_event_bytes`` (by default
    :attr:`MAX_EVENT_BYTES`) raises
    :class:`~translator.errors.MalformedUpstreamError`, so that an upstream
    that never ends one cannot grow the translator's memory without limit.
    """

    MAX_EVENT_BYTES = 8 << 20
    """The default bound on one event's data, and on a line not yet ended (8 MiB)."""

    __slots__ = ("_data", "_event", "_max", "_size", "_skip_lf", "_tail")

    def __init__(self, max_event_bytes: int | None = None) -> None:
        self._tail = b""
        self._data: list[bytes] = []
        self._size = 0  # bytes of the pending event's data, a newline per line included
        self._event = "message"
        self._skip_lf = False
        self._max = self.MAX_EVENT_BYTES if max_event_bytes is None else max_event_bytes

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """The events completed by ``chunk``."""
        if self._skip_lf:
            self._skip_lf = False
            if chunk[:1] == b"\n":
                chunk = chunk[1:]
        if not chunk:
            return []
        text = self._tail + chunk if self._tail else chunk
        if text.find(b"\r") >= 0:
            self._skip_lf = text[-1] == 13  # a "\r\n" may be split between feeds
            text = text.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        elif (
            # The common piece, one whole event of one data line: no line loop.
            text.find(b"\n") == len(text) - 2
            and text[-1] == 10
            and text.startswith(b"data: ")
            and not self._data
        ):
            if len(text) - 8 > self._max:
                raise self._too_long()
            self._tail = b""
            event = self._event
            self._event = "message"
            return [SSEEvent(text[6:-2], event)]
        lines = text.split(b"\n")
        self._tail = lines.pop()
        events: list[SSEEvent] = []
        data = self._data
        size = self._size
        limit = self._max
        for line in lines:
            # Data lines and blank lines inline; the rarer fields through _line.
            if line[:6] == b"data: ":
                data.append(line[6:])
                size += len(line) - 5
            elif line:
                self._size = size
                self._line(line, events)
                size = self._size
            else:
                if data:
                    if size - 1 > limit:
                        raise self._too_long()
                    events.append(SSEEvent(b"\n".join(data), self._event))
                    data = self._data = []
                    size = 0
                self._event = "message"
        self._size = size
        # The unfinished line may hold its "data: " prefix and end besides the data.
        if size + len(self._tail) > limit + 8:
            raise self._too_long()
        return events

    def close(self) -> list[SSEEvent]:
        """At the end of the body: the last event, when only its blank line is missing."""
        events: list[SSEEvent] = []
        if self._tail:
            self._line(self._tail, events)
            self._tail = b""
        self._line(b"", events)
        return events

    def _line(self, line: bytes, events: list[SSEEvent]) -> None:
        if not line:
            if self._data:
                if self._size - 1 > self._max:
                    raise self._too_long()
                events.append(SSEEvent(b"\n".join(self._data), self._event))
            self._data = []
            self._size = 0
            self._event = "message"
            return
        if line[:1] == b":":
            return
        field, sep, value = line.partition(b":")
        if sep and value[:1] == b" ":
            value = value[1:]
        if field == b"data":
            self._data.append(value)
            self._size += len(value) + 1
        elif field == b"event":
            self._event = value.decode("utf-8", "replace")

    def _too_long(self) -> MalformedUpstreamError:
        return MalformedUpstreamError(
            f"The upstream sent a server-sent event longer than {self._max} bytes."
        )


# -- decoding the upstream's replies -------------------------------------------

_DONE = b"[DONE]"
_chunk_decoder = msgspec.json.Decoder(ChatChunk)
_response_decoder = msgspec.json.Decoder(ChatResponse)
_any_decoder = msgspec.json.Decoder()


def parse_error(body: bytes) -> UpstreamDetail | None:
    """The upstream's error as it said it: OpenAI's ``{"error": {...}}`` or a common variant."""
    found = _any_decoder.decode(body)
    return _detail(found) if isinstance(found, dict) else None


def _detail(found: dict[str, Any]) -> UpstreamDetail | None:
    error = found.get("error")
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return _detail_of(error)
    if isinstance(error, str) and error:
        return UpstreamDetail(error)
    if isinstance(found.get("message"), str) and found["message"]:
        return _detail_of(found)  # the flat form: {"object": "error", "message": ...}
    detail = found.get("detail")
    if isinstance(detail, str) and detail:
        return UpstreamDetail(detail)
    return None


def _detail_of(error: dict[str, Any]) -> UpstreamDetail:
    return UpstreamDetail(
        error["message"],
        type=_text(error.get("type")),
        param=_text(error.get("param")),
        code=_text(error.get("code")),
    )


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else msgspec.json.encode(value).decode()


def _upstream_error(detail: UpstreamDetail, backend: str) -> UpstreamStatusError:
    """An error the upstream reported inside a 200 reply, passed through as a 502."""
    return UpstreamStatusError(
        detail.message,
        status=502,
        backend=backend,
        error_type=detail.type or "upstream_error",
        param=detail.param,
        code=detail.code,
    )


def _scrub(value: Any) -> Any:
    """Drop nulls and ``logprobs`` from generic JSON so the canonical types accept it."""
    if isinstance(value, dict):
        return {k: _scrub(v) for k, v in value.items() if v is not None and k != "logprobs"}
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    return value


def _lenient(body: bytes, backend: str) -> dict[str, Any]:
    try:
        found = _any_decoder.decode(body)
    except msgspec.DecodeError as exc:
        raise MalformedUpstreamError(
            f"The {backend} backend sent JSON that could not be parsed: {exc}", backend=backend
        ) from None
    if not isinstance(found, dict):
        raise MalformedUpstreamError(
            f"The {backend} backend sent JSON that is not an object.", backend=backend
        )
    detail = _detail(found) if "error" in found else None
    if detail is not None:
        raise _upstream_error(detail, backend)
    scrubbed: dict[str, Any] = _scrub(found)
    return scrubbed


def _dicts(value: Any) -> list[dict[str, Any]]:
    """The objects in ``value`` when it is a list (a list of anything else is left to fail)."""
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _convert(obj: dict[str, Any], kind: type[Any], backend: str) -> Any:
    try:
        return msgspec.convert(obj, kind)
    except msgspec.ValidationError as exc:
        raise MalformedUpstreamError(
            f"The {backend} backend sent a reply that is not a chat completion: {exc}",
            backend=backend,
        ) from None


def decode_response(body: bytes, *, model: str, backend: str = PLUGIN) -> ChatResponse:
    """A ``chat.completion`` into the canonical response, tolerant of extras and nulls."""
    try:
        return _response_decoder.decode(body)
    except msgspec.DecodeError:
        pass
    obj = _lenient(body, backend)
    obj.setdefault("id", new_completion_id())
    obj.setdefault("created", now())
    obj.setdefault("model", model)
    obj.setdefault("usage", {})
    for choice in _dicts(obj.get("choices")):
        message = choice.get("message")
        for call in _dicts(message.get("tool_calls") if isinstance(message, dict) else None):
            call.setdefault("type", "function")
            call.setdefault("id", new_completion_id("call_"))
    response: ChatResponse = _convert(obj, ChatResponse, backend)
    return response


class _ChunkDecoder:
    """Decodes one stream's chunks; fills an id, ``created`` or model left out."""

    __slots__ = ("backend", "created", "id", "model")

    def __init__(self, model: str, backend: str) -> None:
        self.model = model
        self.backend = backend
        self.id = new_completion_id()
        self.created = now()

    def decode(self, event: SSEEvent) -> ChatChunk:
        if event.event == "error":
            raise _reported_error(event.data, self.backend, "reported an error in its stream")
        try:
            return _chunk_decoder.decode(event.data)
        except msgspec.DecodeError:
            pass
        obj = _lenient(event.data, self.backend)
        obj.setdefault("id", self.id)
        obj.setdefault("created", self.created)
        obj.setdefault("model", self.model)
        for choice in _dicts(obj.get("choices")):
            choice.setdefault("delta", {})
        chunk: ChatChunk = _convert(obj, ChatChunk, self.backend)
        return chunk


# -- the backend ----------------------------------------------------------------


class OpenAICompatBackend(Backend):
    """Talks to one OpenAI-compatible upstream through the shared HTTP client."""

    def __init__(
        self,
        name: str,
        *,
        base_url: str,
        http: BoundClient,
        api_key: str | None = None,
        matrix: Matrix = MATRIX,
        options: Options | None = None,
        files: FileSource | None = None,
    ) -> None:
        self.name = name
        self.matrix = fitted(matrix, keeps_sessions=self.keeps_sessions)
        self.files = files
        self.http = http
        self.options = options or Options()
        self.url = base_url.rstrip("/") + "/chat/completions"
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        headers.update(self.options.headers)
        self._headers = headers
        self._stream_headers = {**headers, "Accept": "text/event-stream"}
        # The upstream's model name: one for every request, a table, or the name asked for.
        model = self.options.model
        self._fixed_model = model if isinstance(model, str) else None
        self._models = model or None if isinstance(model, dict) else None

    def _repeatable(self, request: ChatRequest) -> bool:
        """Whether a chat completion may be sent again after a 502, 504 or a lost connection.

        A chat completion creates nothing upstream, so it may; except a turn
        of a session that the upstream keeps, which a repeat would add twice.
        """
        return not self.keeps_sessions or request.session is None

    def encode_request(self, request: ChatRequest) -> bytes:
        """The upstream's request body: the OpenAI JSON, with the upstream's model name.

        Raises :class:`NeedsIOError` for a file id that may name a file uploaded
        to the translator: its content must be read first (:meth:`complete` does).
        """
        if self.files is not None:
            for i, j, part, file_id in _file_parts(request):
                if is_file_id(file_id):
                    where = "file.file_id" if type(part) is FilePart else "file_id"
                    raise NeedsIOError(
                        f"The file '{file_id}' must be read from the translator's file store "
                        f"and sent inline to the {self.name} backend.",
                        param=f"messages[{i}].content[{j}].{where}",
                    )
        return self._encode(request)

    def _encode(self, request: ChatRequest) -> bytes:
        if self._fixed_model is not None:
            request.model = self._fixed_model
        elif self._models is not None:
            request.model = self._models.get(request.model, request.model)
        vlmrun = request.vlmrun
        if vlmrun is not UNSET and all(getattr(vlmrun, f) is UNSET for f in _VLMRUN_FIELDS):
            request.vlmrun = UNSET  # every part of it was dropped
        return encode_request(request)

    async def inline_files(self, request: ChatRequest) -> None:
        """Put the content of every file uploaded to the translator into ``request``.

        A ``file`` part naming such a file by ``file_id`` gets ``file_data`` (a
        data URI) and ``filename`` instead; an ``input_file`` part (sent only
        when the matrix supports it) becomes such a ``file`` part. An id the
        store does not know is left as it is: the upstream's own. Messages are
        replaced, not changed, so a session's stored history keeps the id.
        """
        files = self.files
        found = _file_parts(request) if files is not None else None
        if not found:
            return
        assert files is not None
        ids = list(dict.fromkeys(file_id for *_, file_id in found))
        read = dict(zip(ids, await asyncio.gather(*(files.read(i) for i in ids)), strict=True))
        messages = list(request.messages)
        copies: dict[int, list[Any]] = {}
        for i, j, part, file_id in found:
            known = read[file_id]
            if known is None:
                continue
            content = copies.get(i)
            if content is None:
                message = messages[i]
                content = copies[i] = list(message.content)  # type: ignore[arg-type]
                messages[i] = msgspec.structs.replace(message, content=content)
            filename, content_type, data = known
            content[j] = _inline(part, filename, content_type, data)
        if copies:
            request.messages = messages

    def decode_response(self, body: bytes, *, model: str) -> ChatResponse:
        return decode_response(body, model=model, backend=self.name)

    async def complete(self, request: ChatRequest) -> ChatResponse:
        if request.stream is True:
            request.stream = UNSET
        request.stream_options = UNSET
        await self.inline_files(request)
        body = self._encode(request)
        reply = await self.http.send(
            "POST", self.url, body=body, headers=self._headers, idempotent=self._repeatable(request)
        )
        self.http.check(reply, parse_error)
        return self.decode_response(reply.body, model=request.model)

    async def stream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        request.stream = True
        await self.inline_files(request)
        body = self._encode(request)
        chunks = _ChunkDecoder(request.model, self.name)
        sse = SSEDecoder()
        async with self.http.stream(
            "POST",
            self.url,
            body=body,
            headers=self._stream_headers,
            parse_error=parse_error,
            idempotent=self._repeatable(request),
        ) as response:
            if response.content_type == "application/json":
                reply = await response.read()
                raise _reported_error(reply, self.name, "answered with JSON, not events")
            async for piece in response.content.iter_any():
                for event in sse.feed(piece):
                    if event.data == _DONE:
                        return
                    yield chunks.decode(event)
            for event in sse.close():
                if event.data == _DONE:
                    return
                yield chunks.decode(event)
        raise MalformedUpstreamError(
            f"The {self.name} backend's stream ended without [DONE]: it was cut off.",
            backend=self.name,
        )


_FilePart = FilePart | InputFilePart


def _file_parts(request: ChatRequest) -> list[tuple[int, int, _FilePart, str]]:
    """``(message, part, the part, its file id)`` of every part naming a file by id."""
    found: list[tuple[int, int, _FilePart, str]] = []
    i = -1
    for message in request.messages:
        i += 1
        content = message.content
        if type(message) is not UserMessage or type(content) is not list:
            continue
        j = -1
        for part in content:
            j += 1
            if type(part) is FilePart:
                file_id = part.file.file_id
                if isinstance(file_id, str):
                    found.append((i, j, part, file_id))
            elif type(part) is InputFilePart:
                found.append((i, j, part, part.file_id))
    return found


def _inline(part: _FilePart, filename: str, content_type: str, data: bytes) -> FilePart:
    """``part`` as a ``file`` part carrying ``data`` as a data URI."""
    encoded = base64.b64encode(data).decode("ascii")
    uri = f"data:{content_type or 'application/octet-stream'};base64,{encoded}"
    if isinstance(part, FilePart):
        given = part.file.filename
        file = FileData(file_data=uri, filename=given if isinstance(given, str) else filename)
        return msgspec.structs.replace(part, file=file)
    return FilePart(file=FileData(file_data=uri, filename=filename))


def _reported_error(body: bytes, backend: str, what: str) -> Exception:
    """The upstream's error in ``body``, or a 502 saying the upstream ``what``."""
    try:
        detail = parse_error(body)
    except msgspec.DecodeError:
        detail = None
    if detail is not None:
        return _upstream_error(detail, backend)
    shown = body[:200].decode("utf-8", "replace")
    return MalformedUpstreamError(f"The {backend} backend {what}: {shown}", backend=backend)


class _SessionKeepingBackend(OpenAICompatBackend):
    """An upstream that keeps conversation state by ``session_id`` (an agents endpoint)."""

    keeps_sessions = True


class OpenAICompatFactory:
    plugin_name = PLUGIN
    description = "Any OpenAI-compatible upstream (vLLM, llama.cpp, LM Studio, agents endpoints)."

    def create(self, name: str, settings: BackendSettings, context: BackendContext) -> Backend:
        if not settings.base_url:
            raise ValueError(f"backend {name!r}: the {PLUGIN} plugin needs a base_url")
        options = settings.options_as(Options, name)
        base = Matrix(name, MATRIX.rules, unknown=options.unknown_fields)
        matrix = settings.configure_matrix(base, name)
        keeps = options.keeps_sessions
        if keeps is None:
            keeps = matrix.treatment("session_id") == Treatment.SUPPORTED
        kind = _SessionKeepingBackend if keeps else OpenAICompatBackend
        return kind(
            name,
            base_url=settings.base_url,
            http=context.http_for(name, settings),
            api_key=settings.resolved_api_key(),
            matrix=matrix,
            options=options,
            files=context.files,
        )


@hookimpl
def register_backends(register: Callable[[BackendFactory], None]) -> None:
    register(OpenAICompatFactory())
