"""Headers every response carries: a strict Content-Security-Policy and its companions.

No inline script or style may run (``script-src 'self'``: only files under /static), forms post only to the
workspace, nothing may frame it, and pages (which show patient data) are never cached. Plain ASGI, like the
kernel's access log.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "object-src 'none'",
    )
)

_ALWAYS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "cross-origin-opener-policy": "same-origin",
    "permissions-policy": "camera=(), microphone=(), geolocation=(), payment=()",
}
STATIC_PREFIX = "/static/"


def security_headers(*, https: bool, static: bool = False) -> dict[str, str]:
    """The headers of one response: pages are never cached (they show patient data), static files are."""
    headers = {**_ALWAYS, "cache-control": "public, max-age=3600" if static else "no-store"}
    if https:
        headers["strict-transport-security"] = "max-age=31536000"
    return headers


class SecurityHeaders:
    def __init__(self, app: ASGIApp, *, https: bool) -> None:
        self.app = app
        self._headers = {
            static: [
                (k.encode(), v.encode()) for k, v in security_headers(https=https, static=static).items()
            ]
            for static in (False, True)
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = str(scope.get("path", "")).startswith(STATIC_PREFIX)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                ours = self._headers[static]
                names = {k for k, _ in ours}
                kept = [(k, v) for k, v in message.get("headers", []) if k.lower() not in names]
                message["headers"] = kept + ours
            await send(message)

        await self.app(scope, receive, send_with_headers)
