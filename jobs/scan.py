"""Run a scan from a TOML config: the same ``raystack.scan.scan`` the CLI calls.

    python jobs/scan.py --config jobs/scan.example.toml --set run_id='"night-02"' --set workers=2
    ray job submit --working-dir . -- python jobs/scan.py --config jobs/scan.example.toml

Under ``ray job submit`` the entrypoint has ``RAY_ADDRESS`` set, so the scan joins that
cluster instead of starting its own Ray. ``--set key=value`` overrides one ScanConfig
field; the value is read as TOML (``workers=2``, ``checkpoints=["a.pt"]``) or, if it is
not valid TOML, as a plain string (``store=s3://bucket/store``). Exit status: the table of
docs/cli.md, as for ``raystack scan``: 0 when every unit is done, 1 when some failed, 2 on
invalid settings, 3 when the store or archive is unavailable (a rerun resumes).
"""

from __future__ import annotations

import argparse
import sys

from raystack.config import parse_set


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True, help="TOML file with a [scan] table")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override one ScanConfig field (repeatable)")
    args = parser.parse_args(argv)

    from raystack.cli_errors import fail
    from raystack.scan import load_scan_config, scan
    from raystack.scan.progress import print_result

    try:
        cfg = load_scan_config(args.config, **parse_set(args.set))
        result = scan(cfg)
    except (Exception, KeyboardInterrupt) as e:
        return fail(e).exit_code  # prints the one-line message; the code of docs/cli.md
    print_result(result)
    if result.dry_run:
        return 0
    from raystack.exitcodes import run_exit_code

    return run_exit_code(result.ok, result.summary.kinds_and_errors())


if __name__ == "__main__":
    sys.exit(main())
