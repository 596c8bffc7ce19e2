"""Train models from a TOML config: the same ``raystack.train.train`` the CLI calls.

    python jobs/train.py --config jobs/train.example.toml --set epochs=4 --set workers=2
    ray job submit --working-dir . -- python jobs/train.py --config jobs/train.example.toml

Under ``ray job submit`` the entrypoint has ``RAY_ADDRESS`` set, so training joins that
cluster instead of starting its own Ray (with ``workers`` >= 2). ``--set key=value``
overrides one TrainConfig field; the value is read as TOML (``epochs=4``,
``model_overrides={img_size=[64, 64]}``) or, if it is not valid TOML, as a plain string
(``storage=s3://bucket/runs``). Rerunning with the same ``name`` resumes the run from its
latest checkpoint. Exit status: the table of docs/cli.md: 0 on success, 1 when training
failed, 2 on invalid settings or input, 3 when storage is unavailable (a rerun resumes).
"""

from __future__ import annotations

import argparse
import sys

from raystack.config import parse_set


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True, help="TOML file with a [train] table")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override one TrainConfig field (repeatable)")
    args = parser.parse_args(argv)

    from raystack.threads import short_omp_spin

    short_omp_spin()  # in-process training (workers <= 1): before anything loads torch
    from raystack.cli_errors import fail
    from raystack.train import load_train_config, train

    try:
        cfg = load_train_config(args.config, **parse_set(args.set))
        result = train(cfg)
    except (Exception, KeyboardInterrupt) as e:
        return fail(e).exit_code  # prints the one-line message; the code of docs/cli.md
    print(result.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
