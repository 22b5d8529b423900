"""`lungsearch spaces`: what each search space tunes, read from the spaces themselves."""

from __future__ import annotations

import argparse
import json


def register(sub) -> None:
    p = sub.add_parser("spaces", help="list the search spaces, their parameters and ranges")
    p.add_argument("names", nargs="*", metavar="NAME", help="space names, shell patterns (mobile*) or .py files (default: all)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.set_defaults(func=cmd_spaces)


def cmd_spaces(args: argparse.Namespace) -> int:
    import spaces

    names = []
    for name in args.names or ["*"]:
        matched = spaces.list_spaces(name) if any(c in name for c in "*?[") else [name]
        if not matched:
            raise spaces.SpaceError(f"no space matches {name!r}; known spaces: {', '.join(spaces.list_spaces())}")
        names += [n for n in matched if n not in names]
    described = {n: describe(spaces.get_space(n)) for n in names}
    if args.json:
        print(json.dumps(described, indent=2))
        return 0
    for name, d in described.items():
        print(f"{name}  ({d['image_size']} px {d['color_mode']})  {d['description']}")
        if d["parameters"] is None:
            print("    parameters: suggested inside build() (add suggest(trial) to the file to list them)")
            continue
        width = max(len(k) for k in d["parameters"])
        for key, text in d["parameters"].items():
            print(f"    {key:<{width}}  {text}")
    return 0


def describe(space) -> dict:
    import spaces

    return {
        "description": space.description,
        "image_size": space.image_size,
        "color_mode": space.color_mode,
        "source": space.source,
        "parameters": spaces.parameters(space),
    }
