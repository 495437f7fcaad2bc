"""Pseudo-label accuracy at equal counts: which ranking of the unlabeled clips puts correct
labels first, the action encoder's confidence, the non-parametric classifier's, or their
collaborative combination?

    python -m benchmarks.pseudo_label_quality data/pseudo_labels/round_1.parquet \\
        [--counts 25 50 100 200] [--vocab data/synthetic/Diving48_vocab.json]

A threshold picks a different number of clips for each ranking, so comparing the strategies at
one threshold mixes count and quality; here each ranking keeps its N most confident clips and
the accuracy of those is printed (the paper's Table 6 compares accuracy at similar counts).
Reads the round table's diagnostic true_label, as no training code does. With a Diving48
vocabulary (one list of phase names per class, as the synthetic benchmark writes too), it also
prints how often each encoder's top label gets each phase right: which parts of an action
an encoder tells apart.
"""

import argparse
import json
from pathlib import Path

import pandas as pd

# ranking name -> (confidence column, label column) of the round table
RANKINGS = {
    "confidence (g alone)": ("g_confidence", "g_label"),
    "non-parametric (f alone)": ("f_confidence", "f_label"),
    "collaborative ((p_f + p_g) / 2)": ("confidence", "label"),
}


def accuracy_at_counts(table: pd.DataFrame, counts: list[int]) -> pd.DataFrame:
    """Accuracy of each ranking's N most confident clips, a row per ranking, a column per N."""
    if "true_label" not in table.columns or table.true_label.isna().any():
        raise ValueError("the round table has no true_label for every clip; nothing to score")
    rows = {}
    for name, (confidence, label) in RANKINGS.items():
        ranked = table.sort_values(confidence, ascending=False, kind="stable")
        correct = (ranked[label] == ranked.true_label).to_numpy()
        rows[name] = {count: correct[:count].mean() for count in counts if count <= len(ranked)}
    return pd.DataFrame.from_dict(rows, orient="index")


def phase_accuracy(table: pd.DataFrame, vocabulary: list[list[str]]) -> pd.DataFrame:
    """Share of clips whose top label has the true label's name for each phase: a row per
    encoder (f, g), a column per phase (named by its position)."""
    rows = {}
    for encoder in ("f", "g"):
        predicted = table[f"{encoder}_label"].to_numpy()
        truth = table.true_label.to_numpy()
        rows[encoder] = {
            f"phase {phase + 1}": sum(
                vocabulary[p][phase] == vocabulary[t][phase]
                for p, t in zip(predicted, truth, strict=True)
            )
            / len(table)
            for phase in range(len(vocabulary[0]))
        }
    return pd.DataFrame.from_dict(rows, orient="index")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("round_table", type=Path, help="a pseudo_label stage's round_<r>.parquet")
    parser.add_argument("--counts", type=int, nargs="+", default=[25, 50, 100, 200])
    parser.add_argument("--vocab", type=Path, help="Diving48_vocab.json: per-phase accuracy too")
    args = parser.parse_args()
    table = pd.read_parquet(args.round_table)
    accuracies = accuracy_at_counts(table, args.counts)
    print(f"{args.round_table}: {len(table)} unlabeled clips, {table.accepted.sum()} accepted")
    print("| ranking | " + " | ".join(f"top {n}" for n in accuracies.columns) + " | all |")
    print("|---|" + "---:|" * (len(accuracies.columns) + 1))
    for name, row in accuracies.iterrows():
        label = RANKINGS[name][1]
        overall = (table[label] == table.true_label).mean()
        print(f"| {name} | " + " | ".join(f"{a:.1%}" for a in row) + f" | {overall:.1%} |")
    if args.vocab is not None:
        phases = phase_accuracy(table, json.loads(args.vocab.read_text()))
        print("\nper phase, share of top labels that name the true phase:")
        print("| encoder | " + " | ".join(phases.columns) + " |")
        print("|---|" + "---:|" * len(phases.columns))
        for encoder, row in phases.iterrows():
            print(f"| {encoder} | " + " | ".join(f"{a:.1%}" for a in row) + " |")


if __name__ == "__main__":
    main()
