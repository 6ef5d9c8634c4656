"""Train a recipe's components through their curricula on Ray Train; print the per-stage metrics.

Run directly (starts a private local Ray):
    python jobs/train.py --recipe jobs/recipes/stard-mini.yaml --component all
or on a cluster:
    ray job submit --address http://127.0.0.1:8265 --working-dir . -- \
        python jobs/train.py --recipe jobs/recipes/stard-mini.yaml --component all
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from backbone.errors import BackboneError
from backbone.pipeline import train_recipe


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", type=Path, required=True, help="The recipe's YAML file.")
    parser.add_argument(
        "--component", choices=["retriever", "reranker", "all"], default="all", help="Which component to train."
    )
    parser.add_argument("--stages", nargs="+", help="Train up to these stages (default: every stage).")
    parser.add_argument("--workers", type=int, help="Ray Train workers per stage (default: the recipe's).")
    parser.add_argument(
        "--gpu",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="Train on GPUs, or not (default: the recipe's; auto: if the cluster has any).",
    )
    parser.add_argument("--registry", help="Artifact registry URI (default: $BACKBONE_REGISTRY).")
    parser.add_argument("--report", type=Path, help="Also write the tables to this Markdown file.")
    args = parser.parse_args(argv)
    components = ["retriever", "reranker"] if args.component == "all" else [args.component]
    try:
        trained = train_recipe(
            args.recipe,
            components=components,
            stages=args.stages,
            registry_uri=args.registry,
            workers=args.workers,
            use_gpu=args.gpu,
        )
    except BackboneError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print("\n\n".join(trained.tables))
    if args.report:
        command = " ".join(["python jobs/train.py", *(sys.argv[1:] if argv is None else argv)])
        args.report.write_text(trained.markdown(command), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
