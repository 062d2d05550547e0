"""The image's HEALTHCHECK: GET /healthz of the service this container runs (standard library only).

The service is the argument, else the one PID 1 runs (``python -m <service>``); its address comes from
the same ``<SERVICE>_HOST`` and ``<SERVICE>_PORT`` the service reads. Exit 0 when it answers 200.
"""

from __future__ import annotations

import os
import sys
import urllib.request

SERVICES = ("intake", "careplan", "referral", "followup", "record", "workspace")
ANY_ADDRESS = {"", "0.0.0.0", "::", "[::]"}


def running_service() -> str:
    try:
        with open("/proc/1/cmdline", "rb") as cmdline:
            args = cmdline.read().decode(errors="replace").split("\0")
    except OSError:
        args = []
    return next((arg for arg in args if arg in SERVICES), "intake")


def healthz_url(service: str) -> str:
    prefix = service.upper()
    host = os.environ.get(f"{prefix}_HOST", "127.0.0.1")
    host = "127.0.0.1" if host in ANY_ADDRESS else host
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{os.environ.get(f'{prefix}_PORT', '8080')}/healthz"


def main() -> int:
    service = sys.argv[1] if len(sys.argv) > 1 else running_service()
    # No proxy: the service is on this host, whatever HTTP_PROXY says.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(healthz_url(service), timeout=4) as answer:
            return 0 if answer.status == 200 else 1
    except (OSError, ValueError) as exc:
        print(f"healthcheck {service}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
