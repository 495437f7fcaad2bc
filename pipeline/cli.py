"""The `finepseudo` command: what is not a pipeline stage.

  finepseudo predict VIDEO...   top-k classes of new video files from a trained model
  finepseudo compare            the label-split comparison table from MLflow
  finepseudo ui                 the Prefect and MLflow UIs on 127.0.0.1
"""

import argparse
import sys
from pathlib import Path

from pipeline.config import ParamsError, load_params


def _predict(args: argparse.Namespace) -> int:
    from pipeline.predict import classifier_from_file, classifier_from_registry, predict_files

    params = load_params(args.params)
    if args.registry:
        classifier = classifier_from_registry(args.registry)
    else:
        model = args.model or Path("models") / params.self_training.final_round / "action.pt"
        classifier = classifier_from_file(model)
    failed = 0
    for prediction in predict_files(classifier, args.videos, params.extract, params.evaluate, args.top_k):
        if prediction.error:
            failed += 1
            print(f"{prediction.path}: error: {prediction.error}", file=sys.stderr)
            continue
        ranked = ", ".join(f"{name} {probability:.3f}" for name, probability in prediction.top)
        print(f"{prediction.path}: {ranked}")
    return 1 if failed else 0


def _compare(args: argparse.Namespace) -> int:
    from pipeline.compare import run_compare

    return run_compare(args)


def _ui(args: argparse.Namespace) -> int:
    from pipeline.ui import serve

    return serve(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="finepseudo", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)

    predict = commands.add_parser("predict", help="classify video files with a trained action encoder")
    predict.add_argument("videos", nargs="+", help="video files decord can read")
    source = predict.add_mutually_exclusive_group()
    source.add_argument("--model", type=Path, help="model file (default: models/<final round>/action.pt)")
    source.add_argument("--registry", help="registered MLflow model, e.g. models:/finepseudo-synthetic/3")
    predict.add_argument("--top-k", type=int, default=5, help="classes to print per video")
    predict.add_argument("--params", type=Path, default=Path("params.yaml"), help="decoding and view settings")
    predict.set_defaults(handler=_predict)

    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except (ParamsError, ValueError, FileNotFoundError) as error:
        print(f"finepseudo {args.command}: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
