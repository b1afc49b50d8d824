"""The request guard of the BentoML service: an ASGI middleware run before BentoML sees a request.

It checks, in order: the API key (``Authorization: Bearer <NER_API_KEY>``, compared in constant
time; probes, metrics and the API docs stay open), then for the tagging routes the content type
(415), the body size (413, refused before the body is read when the client announces it), UTF-8 and
JSON (400), and the route's own input model (413 over a limit, 422 for a missing or mistyped field,
named in the message). Bad input thus gets a precise 4xx, never a BentoML traceback.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable

from pydantic import BaseModel, ValidationError
from starlette.responses import JSONResponse

ASGIApp = Callable[[dict, Callable, Callable], Awaitable[None]]

# Reachable without the API key: probes, metrics and the API documentation, none of which holds data.
OPEN_PATHS = frozenset({"/healthz", "/livez", "/readyz", "/metrics", "/", "/docs.json"})
OPEN_PREFIXES = ("/static_content/",)

# Pydantic error types that mean "over a configured limit" (413), and the variable setting that limit.
_LIMIT_ERRORS = {"string_too_long": "NER_MAX_TEXT_CHARS", "too_long": "NER_MAX_BATCH_SIZE"}


def _field_name(loc: tuple) -> str:
    """('texts', 3) -> 'texts[3]'; () -> 'body'.

    >>> _field_name(("texts", 3)), _field_name(())
    ('texts[3]', 'body')
    """
    name = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc).lstrip(".")
    return name or "body"


def request_problem(body: bytes, model: type[BaseModel]) -> tuple[int, dict] | None:
    """Status and JSON error for a body that the route's input ``model`` rejects, None if it is valid.

    400: not UTF-8 or not JSON; 413: a text or a batch over its limit; 422: a field missing or
    of the wrong type, named in the message.
    """
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        return 400, {"error": f"request body is not valid UTF-8 (invalid byte at offset {exc.start})"}
    try:
        model.model_validate_json(body or b"{}")
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_context=False, include_input=False)
        if errors[0]["type"] == "json_invalid":
            return 400, {"error": f"request body is not valid JSON: {errors[0]['msg'].removeprefix('Invalid JSON: ')}"}
        messages = [f"{_field_name(e['loc'])}: {e['msg']}" for e in errors]
        if all(e["type"] in _LIMIT_ERRORS for e in errors):
            return 413, {"error": f"{messages[0]} (limit set by {_LIMIT_ERRORS[errors[0]['type']]})"}
        return 422, {"error": "; ".join(messages[:5]), "detail": errors}
    return None


class RequestGuard:
    """ASGI middleware: the API-key check, then the tagging routes' input checks.

    ``routes`` maps each tagging path to its input model and the most texts one request may carry.
    The body is read here with a byte cap, so an oversized request is refused without being held
    whole, and checked with the route's own input model.
    """

    def __init__(self, app: ASGIApp, api_key: str | None, max_text_chars: int, routes: dict[str, tuple[type[BaseModel], int]]) -> None:
        self.app = app
        self.routes = routes
        self.expected_authorization = f"Bearer {api_key}".encode() if api_key else None
        # Worst-case JSON of a valid request: 6 bytes a character ("\uXXXX"), every text at the limit.
        self.max_body_bytes = {path: texts * (6 * max_text_chars + 16) + 1024 for path, (_, texts) in routes.items()}

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        if not self._authorized(path, dict(scope["headers"])):
            error = {"error": "missing or wrong API key: send 'Authorization: Bearer <NER_API_KEY>'"}
            await JSONResponse(error, 401, headers={"WWW-Authenticate": "Bearer"})(scope, receive, send)
            return
        if path in self.routes and scope["method"] == "POST":
            problem, receive = await self._check_body(scope, receive, path)
            if problem is not None:
                await JSONResponse(problem[1], problem[0])(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def _authorized(self, path: str, headers: dict[bytes, bytes]) -> bool:
        if self.expected_authorization is None or path in OPEN_PATHS or path.startswith(OPEN_PREFIXES):
            return True
        return hmac.compare_digest(headers.get(b"authorization", b""), self.expected_authorization)

    async def _check_body(self, scope: dict, receive: Callable, path: str) -> tuple[tuple[int, dict] | None, Callable]:
        """(problem or None, a receive that replays the body to the app)."""
        headers = dict(scope["headers"])
        media_type = headers.get(b"content-type", b"application/json").split(b";")[0].strip().lower()
        if media_type != b"application/json":
            return (
                415,
                {"error": f"send the body as JSON with 'Content-Type: application/json', not {media_type.decode('latin-1')!r}"},
            ), receive
        max_bytes = self.max_body_bytes[path]
        too_large = (413, {"error": f"request body over {max_bytes} bytes, more than any request within the limits"})
        declared = headers.get(b"content-length", b"")
        if declared.isdigit() and int(declared) > max_bytes:
            return too_large, receive
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return (400, {"error": "client disconnected before sending the whole body"}), receive
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > max_bytes:
                return too_large, receive
            more = message.get("more_body", False)
        body = b"".join(chunks)
        replayed = False

        async def replay() -> dict:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        return request_problem(body, self.routes[path][0]), replay
