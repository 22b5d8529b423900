"""`lungsearch data`: look at a data folder before searching, or fetch a public one."""

from __future__ import annotations

import argparse
import json
import os
import warnings


def register(sub) -> None:
    p = sub.add_parser("data", help="inspect a data folder, or download a public data set")
    dsub = p.add_subparsers(dest="data_command", metavar="ACTION", required=True)

    i = dsub.add_parser("inspect", help="counts, patients and their overlap, duplicates, sizes, unreadable files; two figures",
                        description="Summarise a data folder the way `lungsearch run` will split it.")
    i.add_argument("dir", metavar="DIR", help="data folder (train/ [val/] test/ of class folders, or class folders only)")
    i.add_argument("--out", help="folder for class_distribution.png and samples.png (default: no figures)")
    i.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    i.add_argument("--image-size", type=int, default=64, help="decode size for samples and the cache (default 64)")
    i.add_argument("--color", choices=("grayscale", "rgb"), default="grayscale", help="color mode (default grayscale)")
    i.add_argument("--val-fraction", type=float, default=0.15, help="validation share, as `run` carves it (default 0.15)")
    i.add_argument("--seed", type=int, default=0, help="split seed, as `run` uses it (default 0)")
    i.add_argument("--group-pattern", metavar="REGEX", help="regex for the patient id in file names (default: Kermany, NIH ChestX-ray14, CheXpert and MIMIC-CXR names)")
    i.add_argument("--cache-dir", help="decoded-image cache (default: the user's cache dir, lungsearch/)")
    i.set_defaults(func=cmd_inspect)

    d = dsub.add_parser("download", help="download a public data set as class folders")
    d.add_argument("dataset", choices=("pneumoniamnist",), help="MedMNIST's PneumoniaMNIST (CC BY 4.0)")
    d.add_argument("--size", type=int, choices=(28, 64, 128, 224), default=28, help="image side (default 28)")
    d.add_argument("--out", required=True, help="empty folder to write train/ val/ test/ class folders into")
    d.add_argument("--source", help="URL or local path of the .npz instead of the published one (MD5 still checked)")
    d.set_defaults(func=cmd_download)


def cmd_inspect(args: argparse.Namespace) -> int:
    from lungsearch import inspect
    from lungsearch.config import check_image_size
    from lungsearch.data import DataError

    check_image_size(args.image_size)
    if not os.path.isdir(args.dir):  # read_layout's own line names run's --data, which inspect does not have
        what = "is a file, not a folder" if os.path.exists(args.dir) else "does not exist"
        raise DataError(f"{args.dir} {what}; give `data inspect` the folder that holds train/<class>/ or <class>/ images")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # skipped files are part of the summary, listed once there
        summary, samples = inspect.inspect_folder(
            args.dir, image_size=args.image_size, color_mode=args.color, val_fraction=args.val_fraction,
            seed=args.seed, group_pattern=args.group_pattern, cache_dir=args.cache_dir,
        )
    figures = inspect.write_figures(summary, samples, args.out) if args.out else []
    if args.json:
        print(json.dumps({**summary, "figures": figures}))
    else:
        print(inspect.format_text(summary))
        for path in figures:
            print(f"wrote {path}")
    return 0


def cmd_download(args: argparse.Namespace) -> int:
    from lungsearch import download

    result = download.download_pneumoniamnist(args.out, size=args.size, source=args.source)
    counts = ", ".join(f"{s} {sum(c.values())} ({', '.join(f'{n} {k}' for n, k in c.items())})" for s, c in result["counts"].items())
    print(f"wrote {os.path.abspath(args.out)}: {counts}")
    from lungsearch.commands import hints

    hints.show([hints.command("data", "inspect", args.out), hints.command("run", "--data", args.out)])
    return 0
