"""Create .env from .env.example with a newly generated API key (used by `make run`)."""

from __future__ import annotations

import secrets
import sys
from pathlib import Path


def main(example: str, target: str) -> None:
    destination = Path(target)
    if destination.exists():
        return
    key = secrets.token_urlsafe(24)
    text = Path(example).read_text().replace("__generated__", key)
    destination.write_text(text)
    destination.chmod(0o600)
    print(f"Created {target}; your API key is {key}")


if __name__ == "__main__":
    main(*sys.argv[1:3])
