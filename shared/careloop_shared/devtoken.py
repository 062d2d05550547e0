"""Print a development bearer token: ``python -m careloop_shared.devtoken --agency A --role R``."""

from __future__ import annotations

import argparse
import sys

from careloop_shared.auth import ROLES, issue_token
from careloop_shared.settings import ServiceSettings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--agency", default="agency-demo")
    parser.add_argument("--role", default="care-manager", choices=sorted(ROLES))
    parser.add_argument("--subject", default="dev-user")
    parser.add_argument("--ttl-hours", type=float, default=12)
    args = parser.parse_args(argv)
    settings = ServiceSettings()
    print(f"# development token for agency={args.agency} role={args.role}", file=sys.stderr)
    print(
        issue_token(
            settings.jwt_secret.get_secret_value(),
            agency=args.agency,
            role=args.role,
            subject=args.subject,
            issuer=settings.jwt_issuer,
            ttl_s=int(args.ttl_hours * 3600),
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
