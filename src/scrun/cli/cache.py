"""cache: list or prune your images in the image cache (scrun.conf ImageCache)."""
from __future__ import annotations

import time

from scrun.cli.output import print_json, print_text
from scrun.errors import ConfigError, UsageError

USAGE = "cache [list|prune] [--keep SIZE] [--format table|json]"


def add_arguments(parser) -> None:
    parser.add_argument("action", nargs="?", choices=("list", "prune"), default="list",
                        help="list (default): your entries; prune: remove those no container runs from")
    parser.add_argument("--keep", default="0", metavar="SIZE",
                        help="prune: keep the most recently used entries up to SIZE (e.g. 20G; default 0: none)")
    parser.add_argument("-f", "--format", choices=("table", "json"), type=str.lower, default="table")


def parse_size(text: str) -> int:
    """Bytes of `20G`, `512M`, `1024` (binary units, as Slurm's memory sizes)."""
    from scrun.config.settings import parse_size as size_or_none

    size = size_or_none(text)
    if size is None:
        raise UsageError(f"--keep {text!r}: not a size (e.g. 0, 512M, 20G)")
    return size


def run(settings, args) -> int:
    from scrun.cli.create import _user_name
    from scrun.config.settings import SCRUN_CONF_NAME, load_site_staging
    from scrun.store.imagecache import list_entries, prune

    keep = parse_size(args.keep)
    cache = load_site_staging(settings.slurm_conf).image_cache
    if cache is None:
        raise ConfigError(f"no image cache: set ImageCache=<a directory every node shares> in the {SCRUN_CONF_NAME} "
                          f"next to {settings.slurm_conf}")
    user = _user_name(settings.identity.real_uid)
    entries = prune(cache, user, keep) if args.action == "prune" else list_entries(cache, user)
    docs = [{"image": e.key, "name": e.image, "bytes": e.size,
             "last_used": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(e.last_used)), "in_use": e.in_use} for e in entries]
    if args.format == "json":
        print_json(docs)
        return 0
    if args.action == "prune":
        print_text("".join(f"removed {d['image']} ({d['bytes']} bytes)\n" for d in docs))
        return 0
    lines = [f"{'IMAGE':<34}{'BYTES':>14}  {'LAST USED':<22}{'IN USE':<8}NAME\n"]
    lines += [f"{d['image']:<34}{d['bytes']:>14}  {d['last_used']:<22}{'yes' if d['in_use'] else 'no':<8}{d['name'] or '-'}\n"
              for d in docs]
    print_text("".join(lines))
    return 0
