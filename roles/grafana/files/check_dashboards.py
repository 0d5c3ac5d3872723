"""Check dashboard JSON files before the grafana role copies them (runs on the controller).

Usage: check_dashboards.py FILE...
Prints one JSON object, {"problems": ["FILE: what is wrong", ...]}, and exits 0 either
way; the role turns the problems into one clear failure.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

# Grafana rejects longer dashboard uids.
MAX_UID_LENGTH = 40


def load(path: Path) -> tuple[object, list[str]]:
    """The file's JSON document, or the sentences saying why there is none."""
    if path.suffix != ".json":
        return None, ["the name must end in .json (Grafana's file provider reads only those)"]
    try:
        with path.open(encoding="utf-8") as handle:
            return json.load(handle), []
    except FileNotFoundError:
        return None, ["no such file on the controller"]
    except (OSError, UnicodeDecodeError) as error:
        return None, [f"cannot be read ({error})"]
    except json.JSONDecodeError as error:
        where = f"line {error.lineno}, column {error.colno}"
        return None, [f"is not valid JSON: {error.msg} at {where}"]


def problems_of(dashboard: object) -> list[str]:
    """What is wrong with one dashboard document (empty when usable)."""
    if not isinstance(dashboard, dict):
        return ["is not a dashboard (the JSON document is not an object)"]
    found = []
    for key in ("uid", "title"):
        value = dashboard.get(key)
        if not isinstance(value, str) or not value.strip():
            found.append(f'has no "{key}" (a non-empty string is required)')
    uid = dashboard.get("uid")
    if isinstance(uid, str) and len(uid) > MAX_UID_LENGTH:
        found.append(f'has a "uid" longer than {MAX_UID_LENGTH} characters')
    return found


def main(paths: list[str]) -> None:
    problems: list[str] = []
    uids: dict[str, str] = {}
    names: dict[str, str] = {}
    for given in paths:
        path = Path(given)
        dashboard, found = load(path)
        if not found:
            found = problems_of(dashboard)
        problems.extend(f"{given}: {text}" for text in found)
        if path.name in names:
            other = names[path.name]
            problems.append(f"{given}: same file name as {other} (both would be copied there)")
        names.setdefault(path.name, given)
        if found:
            continue
        uid = dashboard["uid"]  # type: ignore[index]
        if uid in uids:
            problems.append(f'{given}: same uid "{uid}" as {uids[uid]}')
        uids.setdefault(uid, given)
    print(json.dumps({"problems": problems}))


if __name__ == "__main__":
    main(sys.argv[1:])
