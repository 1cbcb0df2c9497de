"""Fit lorag's shipped answerability gate (``src/lorag/rag/answerability_gate.json``) and show how to set its threshold.

1. ``benchmarks/squad_rag.py``'s *train* articles in open-book form: every paragraph of those articles is a document,
   except 400 removed ones, one question of each asked as unanswerable; 1,200 answerable questions must find their
   paragraph (the *fit* set). Indexed as ``lorag ask`` does (MiniLM + BM25), each question retrieves the passages
   ``lorag ask`` gives the gate: the default k=2 and the follow-up search's one (``--hops``, ``lorag.rag.hops``; the
   shipped gate was fit on two, ``--hops 1``: refit on three it separated no better, ``rag_defaults.md`` section 14).
2. The gate's features (``lorag.rag.answerability``) on those passages, and a logistic regression (scikit-learn)
   for ``P(answerable)``; its coefficients, the training AUC and the provenance go to the JSON file.
3. For thresholds of ``P(answerable)``: the share of unanswerable questions declined (abstention recall) and of
   answerable ones answered, on the fit set, on a *check* set of the same articles with another 200 paragraphs
   removed (500 + 200 questions the fit never saw) and, with ``--dev``, on the dev split's (``squad_rag.py``'s dev
   folder); a question counts as declined as ``lorag ask`` would decline it: by this gate or by the relevance gate
   (best dense score below ``DEFAULT_MIN_RELEVANCE``). The default threshold (``DEFAULT_MIN_ANSWERABILITY``) is read
   from these tables; no test data is used.
4. With ``--gain``, the four inputs from the model (``lorag.rag.question_gain``: how much each passage makes the
   question likelier to SmolLM2-135M-Instruct's base, float32) are added and the gate goes to
   ``answerability_gate_gain.json``, the one ``lorag ask`` uses with its local engine; about 1.5 s a question on
   2 CPU cores, so the scores are kept in ``--gain-cache`` (JSON, by question and passages) for reruns.
5. With ``--hotpot``, the same tables on multi-hop questions: HotpotQA dev questions past the benchmark's first 100
   (``benchmarks/rag_answers.py``'s test set), in two halves (``hotpot-fit``, ``hotpot-check``), each a documents
   folder of their paragraphs with 130 questions asked without one of their two gold paragraphs
   (``make_hotpot_extract.py --unanswerable``). ``--fit-hotpot`` fits on ``hotpot-fit`` too (write it elsewhere
   with ``--output``: the shipped gate is fit on SQuAD alone, ``rag_defaults.md`` section 7 says why).

Usage (from the repository root; a few minutes on 2 CPU cores)::

    PYTHONPATH=src python benchmarks/answerability_gate.py --data ../shared/data/squad-v1.1 \\
        --dev /tmp/rag-bench/squad-dev [--hotpot /tmp/hp/hotpot_dev_more.json] [--gain]

``--hotpot`` is ``hotpot_dev_more.py``'s output (ordered by HotpotQA id; ``rag_defaults.md`` section 7 ran on the
same questions ordered by their official positions, so its halves differ).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from tqdm import tqdm

from lorag.rag.answerability import (
    ANSWERABILITY_FILE,
    ANSWERABILITY_GAIN_FILE,
    FEATURES,
    AnswerabilityGate,
    SentenceSimilarity,
    TermStatistics,
)
from lorag.rag.hops import DEFAULT_HOPS, follow_ups
from lorag.rag.pipeline import DEFAULT_MIN_RELEVANCE
from lorag.rag.question_gain import GAIN_FEATURES, gain_features
from make_hotpot_extract import make_extract
from squad_rag import SEED, load_articles, split_articles, write_eval_set

REPO = Path(__file__).resolve().parents[1]
#: (answerable, unanswerable, seed) of the fit set and of the check set.
FIT, CHECK = (1200, 400, SEED + 11), (500, 200, SEED + 5)
#: Where ``--gain``'s scores are kept between runs (``CachedGain``).
GAIN_CACHE = Path(tempfile.gettempdir()) / "lorag-answerability" / "question-gain.json"
#: Multi-hop questions of each HotpotQA half asked without one of their gold paragraphs.
MULTIHOP_UNANSWERABLE = 130
#: Where the HotpotQA questions past the benchmark's 100 come from (recorded with the gate).
MULTIHOP_SOURCE = "GitHub megagonlabs/RPT at cf2bc1b1, data/hotpotqa/*.jsonl: 1,100 dev questions"
THRESHOLDS = (0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7)
#: Log-odds margins tried for the gain gate's screen (the six-input gate deciding alone when that far from the
#: threshold), and the share of *fit* decisions it may change at any threshold of ``THRESHOLDS``.
SCREEN_MARGINS, SCREEN_CHANGES = (0.75, 1.0, 1.25, 1.5, 2.0), 0.001


def gate_inputs(folder: Path, work: Path, k: int, hops: int = DEFAULT_HOPS) -> list[dict[str, Any]]:
    """For every question of ``folder`` (``docs/`` + ``questions.jsonl``): the question, 1 for answerable ones, the
    passages ``lorag ask`` gives the gate and the gate's features on them (a follow-up passage has no dense score of
    its own)."""
    from lorag.rag.index import DocumentIndex

    index = DocumentIndex(work, embedder="minilm")
    index.sync(folder / "docs")
    terms, sentences = TermStatistics.of_index(index), SentenceSimilarity.of_index(index)
    rows = []
    for line in (folder / "questions.jsonl").open(encoding="utf-8"):
        question = json.loads(line)
        hits = index.search(question["question"], k)
        added = follow_ups(question["question"], hits, index.search, hops, key=lambda h: h.id, text=lambda h: h.text)
        dense = [h.component_scores.get("dense") for h in hits] + [None] * len(added)
        passages = [h.text for h in [*hits, *added]]
        features = AnswerabilityGate.features(question["question"], passages, dense, terms, sentences)
        rows.append(
            {
                "question": question["question"],
                "label": int(bool(question["answers"])),
                "passages": passages,
                "features": features,
            }
        )
    return rows


class CachedGain:
    """``lorag.rag.question_gain``'s scores with SmolLM2-135M-Instruct's base in float32 (the engine ``lorag ask``
    loads for the grounded adapter), kept by question and passages in a JSON file."""

    def __init__(self, cache: Path) -> None:
        self.cache = cache
        self.scores: dict[str, list[list[float]]] = {}
        if cache.is_file():
            try:
                self.scores = json.loads(cache.read_text(encoding="utf-8"))
            except json.JSONDecodeError as err:
                raise SystemExit(f"{cache}: not a question-gain cache ({err}); delete it or pass another") from err
            if not isinstance(self.scores, dict):
                raise SystemExit(f"{cache}: not a question-gain cache (no JSON object); delete it or pass another")
        self._gain: Any = None

    def features(self, question: str, passages: list[str]) -> list[float]:
        key = json.dumps([question, passages])
        if key not in self.scores:
            if self._gain is None:
                from lorag.llm.engine import LoragEngine
                from lorag.rag.question_gain import QuestionGain

                self._gain = QuestionGain.of_engine(LoragEngine("smollm2-135m-instruct", quantization="none"))
            alone, after = self._gain.logprobs(question, passages)
            self.scores[key] = [alone, *after]
        alone, *after = self.scores[key]
        return gain_features(alone, after)

    def save(self) -> None:
        self.cache.write_text(json.dumps(self.scores), encoding="utf-8")


def featurise(
    folder: Path, work: Path, k: int, hops: int = DEFAULT_HOPS, gain: CachedGain | None = None
) -> tuple[list[list[float]], list[int]]:
    """The gate's features of every question of ``folder`` (with ``gain``, ``GAIN_FEATURES`` after them) and 1 for
    answerable ones (``gate_inputs``)."""
    rows = gate_inputs(folder, work, k, hops)
    if gain is None:
        return [r["features"] for r in rows], [r["label"] for r in rows]
    features = [
        r["features"] + gain.features(r["question"], r["passages"])
        for r in tqdm(rows, desc=f"{folder.name}: question gain", file=sys.stderr)
    ]
    gain.save()
    return features, [r["label"] for r in rows]


def write_squad_sets(data: Path, work: Path) -> dict[str, Path]:
    """The *fit* and *check* folders (``FIT``, ``CHECK``) of the train articles of ``squad_rag.py``'s split, written
    once under ``work``."""
    articles = load_articles(data)
    train = [p for title in split_articles(list(articles))["train"] for p in articles[title]]
    folders = {}
    for name, (answerable, unanswerable, seed) in {"fit": FIT, "check": CHECK}.items():
        folder = folders[name] = work / name
        if not (folder / "questions.jsonl").is_file():
            write_eval_set(train, folder, answerable, unanswerable, seed)
    return folders


def write_multihop_sets(source: Path, work: Path, test_questions: Path) -> dict[str, Path]:
    """``hotpot-fit`` and ``hotpot-check``: the even and odd records of ``source``, each as a documents folder with
    ``MULTIHOP_UNANSWERABLE`` of its questions asked without one of their gold paragraphs. A record asking a
    question of the benchmark's test set (``test_questions``, ``rag_answers.py``'s HotpotQA questions) is refused."""
    records = json.loads(source.read_text(encoding="utf-8"))
    held_out = {json.loads(line)["question"] for line in test_questions.read_text(encoding="utf-8").splitlines()}
    if leaked := [r["question"] for r in records if r["question"].strip() in held_out]:
        raise SystemExit(f"{source}: {len(leaked)} questions of the benchmark's test set, e.g. {leaked[0]!r}")
    folders = {}
    for name, part in {"hotpot-fit": records[0::2], "hotpot-check": records[1::2]}.items():
        folder = folders[name] = work / name
        if not (folder / "questions.jsonl").is_file():
            half = work / f"{name}.json"
            half.write_text(json.dumps(part), encoding="utf-8")
            make_extract(half, folder, n=len(part), seed=SEED, unanswerable=MULTIHOP_UNANSWERABLE)
    return folders


def rates(
    probabilities: list[float], features: list[list[float]], labels: list[int], threshold: float
) -> dict[str, float]:
    """Abstention recall and answered rate with the gate and, as ``lorag ask`` has it, the relevance gate too."""
    best_dense = FEATURES.index("dense_best")
    declined = [
        p < threshold or f[best_dense] < DEFAULT_MIN_RELEVANCE for p, f in zip(probabilities, features, strict=True)
    ]
    unanswerable = [d for d, y in zip(declined, labels, strict=True) if not y]
    answerable = [d for d, y in zip(declined, labels, strict=True) if y]
    return {
        "abstention_recall": round(sum(unanswerable) / max(len(unanswerable), 1), 3),
        "answered_rate": round(1 - sum(answerable) / max(len(answerable), 1), 3),
    }


def screen_margin(gate: AnswerabilityGate, features: list[list[float]], screen_file: Path) -> float:
    """The smallest of ``SCREEN_MARGINS`` at which letting the six-input gate of ``screen_file`` decide alone when that
    far from the threshold changes at most ``SCREEN_CHANGES`` of ``features``' decisions at every threshold of
    ``THRESHOLDS``."""
    screen = AnswerabilityGate.load(screen_file)
    full = [gate.probability_of(f) for f in features]
    for margin in SCREEN_MARGINS:
        screened = dataclasses.replace(gate, screen=screen, screen_margin=margin)
        changed = max(
            sum(
                (s := screened.screened(f, t)) is not None and (s >= t) != (p >= t)
                for f, p in zip(features, full, strict=True)
            )
            for t in THRESHOLDS
        )
        if changed <= SCREEN_CHANGES * len(features):
            return margin
    raise SystemExit(f"no margin of {SCREEN_MARGINS} keeps the gate's decisions; fit without a screen")


def main(argv: list[str] | None = None) -> int:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.preprocessing import StandardScaler

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="folder with SQuAD's dev-v1.1.json.zip")
    parser.add_argument("--dev", type=Path, help="squad_rag.py's dev folder, to check thresholds on")
    parser.add_argument(
        "--hotpot",
        type=Path,
        help="HotpotQA dev distractor questions beyond the benchmark's first 100 (hotpot_dev_more.py), "
        "to check the gate on multi-hop questions (two halves)",
    )
    parser.add_argument("--fit-hotpot", action="store_true", help="fit on the even half of --hotpot too")
    parser.add_argument(
        "--hotpot-test",
        type=Path,
        default=Path(tempfile.gettempdir()) / "rag-bench" / "hotpotqa-dev" / "questions.jsonl",
        help="the benchmark's HotpotQA questions (make_hotpot_extract.py's output), never used here",
    )
    parser.add_argument("--gain", action="store_true", help="add the model's question gain (lorag.rag.question_gain)")
    parser.add_argument(
        "--gain-cache", type=Path, default=GAIN_CACHE, help="where --gain's scores are kept between runs"
    )
    parser.add_argument(
        "--output",
        type=Path,
        help="default: answerability_gate[_gain].json in src/lorag/rag (--gain: the shipped six-input screen is "
        "copied beside it where none is)",
    )
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "lorag-answerability")
    parser.add_argument("--k", type=int, default=2)
    parser.add_argument("--hops", type=int, default=DEFAULT_HOPS, help="searches per question, as lorag ask's --hops")
    args = parser.parse_args(argv)
    if args.fit_hotpot and not args.hotpot:
        parser.error("--fit-hotpot needs --hotpot")
    if args.hops < 1:
        parser.error(f"--hops must be >= 1 (1: the question's own search only), got {args.hops}")
    if not (args.data / "dev-v1.1.json.zip").is_file():
        parser.error(f"{args.data} holds no dev-v1.1.json.zip: pass the SQuAD v1.1 folder (../shared/data/squad-v1.1)")
    args.output = args.output or (ANSWERABILITY_GAIN_FILE if args.gain else ANSWERABILITY_FILE)
    if args.gain and args.output.name == ANSWERABILITY_FILE.name:
        parser.error(f"--gain --output {args.output}: that name is the six-input screen's, which sits beside it")
    gain = CachedGain(args.gain_cache) if args.gain else None

    tables: dict[str, tuple[list[list[float]], list[int]]] = {}
    for name, folder in write_squad_sets(args.data, args.work).items():
        tables[name] = featurise(folder, args.work / f"{name}-index", args.k, args.hops, gain)
    fitted = ["fit", "hotpot-fit"] if args.fit_hotpot else ["fit"]
    if args.hotpot:
        for name, folder in write_multihop_sets(args.hotpot, args.work, args.hotpot_test).items():
            tables[name] = featurise(folder, args.work / f"{name}-index", args.k, args.hops, gain)
    x = [row for name in fitted for row in tables[name][0]]
    y = [label for name in fitted for label in tables[name][1]]
    scaler = StandardScaler().fit(x)
    model = LogisticRegression(max_iter=5000).fit(scaler.transform(x), y)
    probabilities = model.predict_proba(scaler.transform(x))[:, 1].tolist()
    gate: dict[str, Any] = {
        "features": list(FEATURES + GAIN_FEATURES if args.gain else FEATURES),
        "coefficients": model.coef_[0].round(6).tolist(),
        "intercept": round(float(model.intercept_[0]), 6),
        "mean": scaler.mean_.round(6).tolist(),
        "scale": scaler.scale_.round(6).tolist(),
        "metadata": {
            "train_questions": {"answerable": sum(y), "unanswerable": len(y) - sum(y)},
            "train_auc": round(float(roc_auc_score(y, probabilities)), 4),
            "k": args.k,
            "hops": args.hops,
            "retrieval": "lorag DocumentIndex defaults (all-MiniLM-L6-v2 + BM25, fused)",
            **({"question_gain": "smollm2-135m-instruct base, float32 (lorag.rag.question_gain)"} if args.gain else {}),
            "data": "SQuAD v1.1 dev (Rajpurkar et al. 2016, CC BY-SA 4.0): the train articles of "
            "benchmarks/squad_rag.py's by-article split, in open-book form; no dev or test article"
            + (
                "; HotpotQA dev distractor (Yang et al. 2018, CC BY-SA 4.0): the even half of the questions at "
                f"official positions >= 100 ({MULTIHOP_SOURCE}), never the benchmark's first 100"
                if args.fit_hotpot
                else ""
            ),
            "command": "PYTHONPATH=src python benchmarks/answerability_gate.py "
            + shlex.join(str(a).replace(f"{REPO}/", "") for a in (argv if argv is not None else sys.argv[1:])),
        },
    }
    args.output.write_text(json.dumps(gate, indent=1) + "\n", encoding="utf-8")
    if args.gain:
        # The gain gate names its screen by file name, beside it: an --output elsewhere gets the shipped one copied.
        screen_file = args.output.with_name(ANSWERABILITY_FILE.name)
        if not screen_file.is_file():
            shutil.copyfile(ANSWERABILITY_FILE, screen_file)
        margin = screen_margin(AnswerabilityGate.load(args.output), x, screen_file)
        gate["screen"] = {"gate": ANSWERABILITY_FILE.name, "margin": margin}
        args.output.write_text(json.dumps(gate, indent=1) + "\n", encoding="utf-8")
    written = {"train_auc": gate["metadata"]["train_auc"], "screen": gate.get("screen"), "output": str(args.output)}
    print(json.dumps(written))
    shipped = AnswerabilityGate.load(args.output)
    if args.dev:
        tables["dev"] = featurise(args.dev, args.work / "dev-index", args.k, args.hops, gain)
    for name, (features, labels) in tables.items():
        scores = [shipped.probability_of(f) for f in features]
        print(f"{name}: AUC {roc_auc_score(labels, scores):.3f}")
        for threshold in THRESHOLDS:
            screened = [shipped.screened(f, threshold) for f in features]
            decided = [p if s is None else s for p, s in zip(scores, screened, strict=True)]
            row = {"split": name, "min_answerability": threshold, **rates(decided, features, labels, threshold)}
            if shipped.reads_model:
                row["model_read"] = round(sum(s is None for s in screened) / len(features), 3)
            print(json.dumps(row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
