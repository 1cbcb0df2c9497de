"""Does the model find the question more likely after a passage? Pointwise mutual information as gate inputs.

A SQuAD question is written while reading its paragraph, so the paragraph makes its words predictable; another
paragraph of the same article, which is what a removed paragraph leaves, makes them less so. For each question of
``answerability_gate.py``'s *fit* and *check* sets and each passage the gate sees (the same passages: the default k=2
and the follow-up search's), SmolLM2-135M-Instruct (the bare base, float32, no chat template) reads
``passage + "\\nQuestion:" + question`` and, for the baseline, ``"\\nQuestion:" + question``; the question's
tokens' log-probabilities give, per passage, the mean gain over the baseline (PMI). Four inputs per question: the
largest gain, the first passage's, the smallest, and the largest gain of a single token (``lorag.rag.question_gain``,
which ``answerability_gate.py --gain`` ships in the gate; the two scripts share their scores' cache). A logistic
regression over the gate's six features with and without them is fit on *fit* and read on *check*
(``rag_defaults.md`` section 20), with a 10-fold cross-validation within *check* beside it.

One forward pass per passage and one for the question alone: about 2 s a question on 2 CPU cores, so by default only
3 of every 8 *fit* questions are scored (``--fit-subsample``); *check* is scored whole.

Usage (from the repository root; about 45 minutes on 2 CPU cores, ``--limit 60`` for a smoke run)::

    PYTHONPATH=src python benchmarks/answerability_pmi.py --data ../shared/data/squad-v1.1
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from tqdm import tqdm

from answerability_gate import CachedGain, gate_inputs, write_squad_sets
from lorag.rag.answerability import FEATURES
from lorag.rag.hops import DEFAULT_HOPS
from lorag.rag.pipeline import DEFAULT_MIN_RELEVANCE

ANSWERED_RATES = (0.9, 0.88, 0.86)
BEST_DENSE = FEATURES.index("dense_best")
CV_FOLDS = 10
PMI_INPUTS = ("largest gain", "first passage's gain", "smallest gain", "largest one-token gain")


def recall_at(probabilities: Any, best_dense: Any, labels: Any, answered: float) -> float:
    """Abstention recall at the highest threshold answering ``answered`` of the answerable questions, the relevance
    gate counted as ``lorag ask`` counts it."""
    import numpy as np

    for threshold in np.arange(0.99, 0.05, -0.0025):
        declined = (probabilities < threshold) | (best_dense < DEFAULT_MIN_RELEVANCE)
        if 1 - declined[labels == 1].mean() >= answered:
            return float(declined[labels == 0].mean())
    return float("nan")


def main(argv: list[str] | None = None) -> int:
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="folder with SQuAD's dev-v1.1.json.zip")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "lorag-answerability")
    parser.add_argument("--fit-subsample", type=int, default=3, help="score fit questions i with i %% 8 < N (8: all)")
    parser.add_argument("--limit", type=int, help="only the first N questions of each set (a smoke run)")
    parser.add_argument(
        "--gain-cache",
        type=Path,
        default=Path(tempfile.gettempdir()) / "lorag-answerability" / "question-gain.json",
        help="the scores kept between runs (shared with answerability_gate.py --gain)",
    )
    args = parser.parse_args(argv)
    if not 1 <= args.fit_subsample <= 8:
        parser.error(f"--fit-subsample must be 1-8, got {args.fit_subsample}")
    if not (args.data / "dev-v1.1.json.zip").is_file():
        parser.error(f"{args.data} holds no dev-v1.1.json.zip: pass the SQuAD v1.1 folder (../shared/data/squad-v1.1)")
    if args.limit is not None and args.limit < 1:
        parser.error(f"--limit must be at least 1, got {args.limit}")

    chosen: dict[str, list[dict[str, Any]]] = {}
    for name, folder in write_squad_sets(args.data, args.work).items():
        rows = gate_inputs(folder, args.work / f"{name}-index", 2, DEFAULT_HOPS)
        if name == "fit":
            rows = [r for i, r in enumerate(rows) if i % 8 < args.fit_subsample]
        rows = chosen[name] = rows[: args.limit]
        if min(sum(r["label"] for r in rows), sum(1 - r["label"] for r in rows)) < CV_FOLDS:
            raise SystemExit(
                f"{name}: fewer than {CV_FOLDS} answerable or unanswerable questions in the first {len(rows)}; "
                "raise --limit (60 gives both)"
            )
    gain = CachedGain(args.gain_cache)
    sets: dict[str, tuple[Any, Any, Any]] = {}
    for name, rows in chosen.items():
        pmi = [gain.features(r["question"], r["passages"]) for r in tqdm(rows, desc=name, file=sys.stderr)]
        gain.save()
        sets[name] = (np.array([r["features"] for r in rows]), np.array(pmi), np.array([r["label"] for r in rows]))

    for name, (_, pmi, labels) in sets.items():
        aucs = ", ".join(f"{what} {roc_auc_score(labels, pmi[:, j]):.3f}" for j, what in enumerate(PMI_INPUTS))
        print(f"{name} ({labels.sum()} answerable, {len(labels) - labels.sum()} unanswerable): ROC AUC alone: {aucs}")
    print(
        "\n| gate inputs | ROC AUC fit / check | check recall at answered "
        + " / ".join(map(str, ANSWERED_RATES))
        + " |"
    )
    print("| --- | --- | --- |")
    for label, use_pmi in (("the six features", False), ("six + PMI", True)):

        def inputs(name: str, use_pmi: bool = use_pmi) -> Any:
            six, pmi, _ = sets[name]
            return np.hstack([six, pmi]) if use_pmi else six

        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000)).fit(inputs("fit"), sets["fit"][2])
        scores = {name: model.predict_proba(inputs(name))[:, 1] for name in sets}
        aucs = " / ".join(f"{roc_auc_score(sets[name][2], scores[name]):.3f}" for name in sets)
        six, _, labels = sets["check"]
        recalls = " / ".join(f"{recall_at(scores['check'], six[:, BEST_DENSE], labels, a):.3f}" for a in ANSWERED_RATES)
        print(f"| {label}, fit on fit | {aucs} | {recalls} |")
        cross = cross_val_predict(
            make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000)),
            inputs("check"),
            labels,
            cv=CV_FOLDS,
            method="predict_proba",
        )[:, 1]
        recalls = " / ".join(f"{recall_at(cross, six[:, BEST_DENSE], labels, a):.3f}" for a in ANSWERED_RATES)
        print(f"| {label}, 10-fold CV within check | - / {roc_auc_score(labels, cross):.3f} | {recalls} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
