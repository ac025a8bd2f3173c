"""The thin main every recipe shares: parse a few flags, then `train_and_evaluate`."""
from __future__ import annotations

import argparse
from collections.abc import Callable

from jaxcnn.cli import run_training
from jaxcnn.train.config import TrainConfig


def run_recipe(
    config: TrainConfig,
    argv: list[str] | None,
    *,
    description: str,
    default_workdir: str,
    has_smoke: bool = False,
    extra_arguments: Callable[[argparse.ArgumentParser], None] | None = None,
    adjust: Callable[[TrainConfig, argparse.Namespace], TrainConfig] | None = None,
) -> int:
    """Run ``config`` with ``--workdir``/``--resume``/``--no-progress`` (and ``--smoke``).

    Args:
      config: the recipe.
      argv: command-line arguments (None: ``sys.argv[1:]``).
      description: the recipe's docstring, shown by ``--help``.
      default_workdir: where the run writes unless ``--workdir`` is given.
      has_smoke: add a ``--smoke`` flag (``args.smoke``) for ``adjust`` to act on.
      extra_arguments: adds recipe-specific flags to the parser.
      adjust: ``adjust(config, args)`` returns the config to run, given the
        parsed flags (e.g. the scaled-down one for ``--smoke``).

    Returns:
      The exit status of :func:`jaxcnn.cli.run_training` (0 on success).
    """
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", default=None,
                        help=f"output directory (default: {default_workdir}, "
                        f"or {default_workdir}_smoke with --smoke)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in --workdir from its latest checkpoint")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    if has_smoke:
        parser.add_argument("--smoke", action="store_true",
                            help="a tiny, minutes-long version of the recipe (checks it runs)")
    if extra_arguments is not None:
        extra_arguments(parser)
    args = parser.parse_args(argv)
    is_smoke = bool(getattr(args, "smoke", False))
    if adjust is not None:
        config = adjust(config, args)
    workdir = args.workdir or (default_workdir + ("_smoke" if is_smoke else ""))
    return run_training(config, workdir, resume=args.resume, progress=not args.no_progress)
