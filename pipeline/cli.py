"""The `finepseudo` command: what is not a pipeline stage.

finepseudo predict VIDEO...   top-k classes of new video files from a trained model
finepseudo preset FILE        write a preset such as presets/paper.yaml into params.yaml
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
    for prediction in predict_files(
        classifier, args.videos, params.extract, params.evaluate, params.run.precision, args.top_k
    ):
        if prediction.error:
            failed += 1
            print(f"{prediction.path}: error: {prediction.error}", file=sys.stderr)
            continue
        ranked = ", ".join(f"{name} {probability:.3f}" for name, probability in prediction.top)
        print(f"{prediction.path}: {ranked}")
    return 1 if failed else 0


def _check(args: argparse.Namespace) -> int:
    run = load_params(args.params).run
    labels = f"{run.fraction:.0%} labels, split seed {run.seed}"
    print(f"{args.params}: valid; dvc repro trains {run.method} on {labels}")
    return 0


def _preset(args: argparse.Namespace) -> int:
    from pipeline.presets import apply_preset

    apply_preset(args.params, args.preset)
    print(f"{args.params}: applied {args.preset}")
    return 0


def _compare(args: argparse.Namespace) -> int:
    from pipeline.compare import run_compare

    return run_compare(args)


def _ui(args: argparse.Namespace) -> int:
    from pipeline.ui import serve

    return serve(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="finepseudo", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)

    predict = commands.add_parser(
        "predict", help="classify video files with a trained action encoder"
    )
    predict.add_argument("videos", nargs="+", help="video files decord can read")
    source = predict.add_mutually_exclusive_group()
    source.add_argument(
        "--model", type=Path, help="model file (default: models/<final round>/action.pt)"
    )
    source.add_argument(
        "--registry", help="registered MLflow model, e.g. models:/finepseudo-synthetic/3"
    )
    predict.add_argument("--top-k", type=int, default=5, help="classes to print per video")
    predict.add_argument(
        "--params", type=Path, default=Path("params.yaml"), help="decoding and view settings"
    )
    predict.set_defaults(handler=_predict)

    compare = commands.add_parser(
        "compare",
        help="top-1 per method and label fraction, mean ± std over split seeds, and "
        "pseudo-labels per round, from the MLflow runs",
    )
    compare.add_argument("--experiment", help="MLflow experiment (default: dataset.name)")
    compare.add_argument(
        "--params", type=Path, default=Path("params.yaml"), help="names the default experiment"
    )
    compare.add_argument(
        "--out", type=Path, default=Path("comparison"), help="folder for the CSV, Markdown, PNG"
    )
    compare.add_argument(
        "--where",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="keep runs whose param KEY is VALUE, e.g. metric_learning.distance=softdtw",
    )
    compare.add_argument(
        "--by",
        action="append",
        default=[],
        metavar="KEY",
        help="a row per value of this param too, e.g. pseudo_label.strategy (ablations)",
    )
    compare.add_argument("--config", help="keep runs of this setting (finepseudo.config tag)")
    compare.add_argument(
        "--no-log", dest="log", action="store_false", help="do not log the comparison to MLflow"
    )
    compare.set_defaults(handler=_compare)

    ui = commands.add_parser("ui", help="the Prefect and MLflow UIs on 127.0.0.1 until Ctrl-C")
    ui.add_argument("--prefect-port", type=int, default=4200, help="Prefect server port")
    ui.add_argument("--mlflow-port", type=int, default=5000, help="MLflow UI port")
    ui.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for both")
    ui.set_defaults(handler=_ui)

    check = commands.add_parser(
        "check", help="validate params.yaml (every key, and that the run has a label split)"
    )
    check.add_argument("--params", type=Path, default=Path("params.yaml"), help="params file")
    check.set_defaults(handler=_check)

    preset = commands.add_parser(
        "preset", help="write a preset's values (e.g. presets/paper.yaml) into params.yaml"
    )
    preset.add_argument("preset", type=Path, help="partial params file")
    preset.add_argument(
        "--params", type=Path, default=Path("params.yaml"), help="params file to update"
    )
    preset.set_defaults(handler=_preset)

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
