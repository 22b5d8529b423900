"""`lungsearch studies`: every study in a storage, one line each."""

from __future__ import annotations

import argparse
import json

from lungsearch.commands.common import quiet_frameworks, storage_args


def register(sub) -> None:
    p = sub.add_parser("studies", help="list the studies in a storage: space, trials by state, best value, training time")
    storage_args(p, with_study=False)
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_studies)


def cmd_studies(args: argparse.Namespace) -> int:
    quiet_frameworks()
    import search
    from search.overview import overview

    rows = overview(search.open_storage(args.storage, read_only=True))
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print(f"no studies in {args.storage}; start one with `lungsearch run --storage {args.storage}`")
        return 0
    print(format_table(rows))
    return 0


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


def _refined(facts: dict | None) -> str:
    if not facts:
        return "-"
    text = f"{facts['done']}/{facts['finalists']} x {facts['folds']} folds"
    if facts.get("best_trial") is not None:
        text += f", OOF AUC {facts['best_oof_auc']:.4f} (#{facts['best_trial']})"
    return text


def format_table(rows: list[dict]) -> str:
    header = ("study", "space", "complete", "pruned", "fail", "running", "waiting", "best", "train time", "refined")
    lines = [header]
    for r in rows:
        t = r["trials"]
        best = "-" if r["best_value"] is None else f"{r['metric']}={r['best_value']:.4f} (#{r['best_trial']})"
        lines.append((r["study"], r["space"], *(str(t[k]) for k in ("complete", "pruned", "fail", "running", "waiting")),
                      best, _duration(r["train_seconds"]), _refined(r.get("refined"))))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip() for line in lines)
