"""Check dashboard JSON files before the grafana role copies them (runs on the controller).

Usage: check_dashboards.py FILE...  Prints one JSON object: {"problems": ["FILE: what is wrong", ...]}.
Exit status 0 either way; the role turns problems into one clear failure.
"""

import json
import os
import sys

# Grafana rejects longer dashboard uids.
MAX_UID_LENGTH = 40


def problems_of(path):
    """What is wrong with one file, as a list of sentences (empty when usable)."""
    if not path.endswith(".json"):
        return ["the name must end in .json (Grafana's file provider reads only those)"]
    try:
        with open(path, encoding="utf-8") as handle:
            dashboard = json.load(handle)
    except FileNotFoundError:
        return ["no such file on the controller"]
    except (OSError, UnicodeDecodeError) as error:
        return [f"cannot be read ({error})"]
    except json.JSONDecodeError as error:
        return [f"is not valid JSON: {error.msg} at line {error.lineno}, column {error.colno}"]
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


def main(paths):
    problems = []
    uids = {}
    names = {}
    for path in paths:
        found = problems_of(path)
        problems.extend(f"{path}: {text}" for text in found)
        name = os.path.basename(path)
        if name in names:
            problems.append(f"{path}: same file name as {names[name]} (both would be copied to {name})")
        names.setdefault(name, path)
        if found:
            continue
        with open(path, encoding="utf-8") as handle:
            uid = json.load(handle)["uid"]
        if uid in uids:
            problems.append(f'{path}: same uid "{uid}" as {uids[uid]}')
        uids.setdefault(uid, path)
    print(json.dumps({"problems": problems}))


if __name__ == "__main__":
    main(sys.argv[1:])
