"""Real external parties for tests: a local HTTP receiver (webhooks, SMS providers) and an SMTP sink.
Shared by every test package through tests/conftest.py."""
from __future__ import annotations

import json
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: str

    def json(self):
        return json.loads(self.body)


@dataclass
class Receiver:
    """An HTTP server on 127.0.0.1 that records every request and answers `status` (or the next of `script`)."""

    port: int = field(default_factory=free_port)
    status: int = 200
    script: list[int] = field(default_factory=list)
    requests: list[Received] = field(default_factory=list)
    on_request: object = None  # callable(Received) run before answering
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/encaisse"

    def start(self) -> "Receiver":
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                length = int(self.headers.get("content-length") or 0)
                item = Received(self.path, {k.lower(): v for k, v in self.headers.items()},
                                self.rfile.read(length).decode())
                receiver.requests.append(item)
                if receiver.on_request:
                    receiver.on_request(item)
                status = receiver.script.pop(0) if receiver.script else receiver.status
                answer = json.dumps({"ok": 200 <= status < 300, "id": f"r{len(receiver.requests)}"}).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


@pytest.fixture
def allow_local(settings):
    settings.WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
    return settings


@pytest.fixture
def receiver(allow_local):
    r = Receiver().start()
    yield r
    r.stop()


@dataclass
class SmtpSink:
    port: int
    messages: list = field(default_factory=list)


@pytest.fixture
def smtp_sink(settings):
    from email import message_from_bytes, policy

    from aiosmtpd.controller import Controller

    sink = SmtpSink(port=free_port())

    class Handler:
        async def handle_DATA(self, server, session, envelope):  # noqa: N802
            sink.messages.append((envelope.rcpt_tos, message_from_bytes(envelope.content, policy=policy.default)))
            return "250 OK"

    controller = Controller(Handler(), hostname="127.0.0.1", port=sink.port)
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", sink.port
    settings.EMAIL_USE_TLS, settings.EMAIL_HOST_USER, settings.EMAIL_HOST_PASSWORD = False, "", ""
    yield sink
    controller.stop()
