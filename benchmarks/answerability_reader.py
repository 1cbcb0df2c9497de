"""Train a cross-encoder reading a question and one sentence; try its score as the answerability gate's 7th input.

The six-input gate (``lorag.rag.answerability``) reads words and embeddings, not meaning; on SQuAD's test articles
it declined 52% of the questions whose paragraph was removed, short of #15's 60% (``rag_defaults.md`` sections 6-7,
16-17; 58% since the gate also reads the model's question gain, section 21). A reader trained for the question
"does this sentence answer it?" is the next thing to try. This script:

1. builds (question, sentence) pairs from the train articles of ``squad_rag.py``'s split, leaving out every question
   of ``answerability_gate.py``'s *fit* and *check* sets and every question of a paragraph those sets remove: the
   sentence holding the answer (with the sentence before it, for its pronouns) is positive; another sentence of the
   paragraph and the three sentences of the article's other paragraphs sharing most words with the question are
   negative (the distractors a removed paragraph leaves);
2. fine-tunes the first ``--layers`` layers of the index's MiniLM (``lorag.models``: ``minilm``) with a one-logit
   head on them (binary cross-entropy), printing the loss and the AUC on held-back pairs: a LoRA adapter of rank
   ``--lora-rank`` (peft; the head and the pooler trained whole: 0.8 M weights, 3 MB in safetensors), or with
   ``--lora-rank 0`` every weight;
3. scores each question of the fit / check / dev sets by the best logit over the sentences of the passages the gate
   sees, and prints ROC AUC for "answerable" of that score alone, of the shipped six features refit on *fit*, and of
   the six plus the score, with abstention recall @ answered-rate at the thresholds ``lorag ask`` could take; with
   ``--gain``, of the ten inputs (the six + ``lorag.rag.question_gain``'s four, from ``answerability_gate.py``'s
   cache) and the ten plus the score.

On this project's 2 CPU cores all six layers fine-tuned (800 steps of 32 pairs, 37 min; ``rag_defaults.md``
section 17) raised the gate's ROC AUC from 0.871 to 0.891 on the check questions and from 0.907 to 0.936 on dev;
three layers, 600 steps, learned nothing (0.49 alone). The LoRA reader (the defaults: rank 16, lr 5e-4, 800 steps,
42 min) reads pairs as well (held-back AUC 0.912 vs 0.904) and moves the gate as little at the answered rate
``lorag ask`` keeps (section 18). Beside the question gain it does move it: *check*'s abstention recall goes from
0.690 to 0.750 at the threshold the rule picks for each gate (0.55, 0.60; answered 0.906, 0.886; section 23), but
end to end on the dev sets it lowered abstention recall and multi-hop F1 (section 24): not shipped. ``--save`` keeps
the reader and its training metadata, ``--reader`` scores a saved one without training; ``--device cuda`` trains on
a GPU. No test data is read.

Usage (from the repository root)::

    PYTHONPATH=src python benchmarks/answerability_reader.py --data ../shared/data/squad-v1.1 \\
        --dev /tmp/rag-bench/squad-dev [--save /tmp/reader | --reader /tmp/reader] [--gain] [--device cuda]
"""

from __future__ import annotations

import argparse
import json
import random
import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from answerability_gate import GAIN_CACHE, REPO, THRESHOLDS, CachedGain, gate_inputs, rates, write_squad_sets
from lorag.rag.answerability import split_sentences
from lorag.retrieval.tokenization import Tokenizer
from squad_rag import load_articles, split_articles

#: Pairs held back from training to print the pair-level AUC.
HELD_BACK = 800
#: MiniLM's linear layers a LoRA reader adapts (all but the pooler's, which is trained whole with the head).
LORA_TARGETS = ("query", "key", "value", "intermediate.dense", "output.dense")
MAX_LENGTH = 128


def with_previous(sentences: list[str], i: int) -> str:
    return (sentences[i - 1] + " " if i else "") + sentences[i]


_TOKENIZE = Tokenizer().tokenize


def overlap(words: set[str], sentence: str) -> int:
    return len(words & set(_TOKENIZE(sentence)))


def training_pairs(data: Path, sets: dict[str, Path], seed: int = 7) -> list[tuple[str, str, int]]:
    """(question, sentence, 1 if it holds the answer) from the train articles, none of the gate's sets' questions."""
    present = {name: {f.name for f in (folder / "docs").iterdir()} for name, folder in sets.items()}
    used = {
        json.loads(line)["id"]
        for folder in sets.values()
        for line in (folder / "questions.jsonl").open(encoding="utf-8")
    }
    articles = load_articles(data)
    rng, pairs = random.Random(seed), []
    for title in split_articles(list(articles))["train"]:
        paragraphs = articles[title]
        sentences = [split_sentences(p.text) for p in paragraphs]
        for pi, paragraph in enumerate(paragraphs):
            if any(paragraph.file not in files for files in present.values()):
                continue  # a paragraph a gate set removes: its questions stay unseen
            own = sentences[pi]
            for qid, question, answers in paragraph.qas:
                words = set(_TOKENIZE(question))
                holding = [i for i, s in enumerate(own) if answers[0] in s]
                if qid in used or not holding:
                    continue
                pairs.append((question, with_previous(own, max(holding, key=lambda i: overlap(words, own[i]))), 1))
                if others := [i for i in range(len(own)) if answers[0] not in own[i]]:
                    pairs.append((question, with_previous(own, rng.choice(others)), 0))
                nearest = sorted(
                    (
                        (overlap(words, s), pj, j)
                        for pj, ss in enumerate(sentences)
                        if pj != pi
                        for j, s in enumerate(ss)
                    ),
                    reverse=True,
                )[:3]
                pairs += [(question, with_previous(sentences[pj], j), 0) for _, pj, j in nearest]
    rng.shuffle(pairs)
    return pairs


def train(pairs: list[tuple[str, str, int]], args: argparse.Namespace) -> tuple[Any, Any]:
    import torch
    from sklearn.metrics import roc_auc_score
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    from lorag.models import resolve_model

    torch.manual_seed(0)
    path = resolve_model("minilm")
    tokenizer = AutoTokenizer.from_pretrained(path)
    config = AutoConfig.from_pretrained(path, num_hidden_layers=args.layers, num_labels=1)
    model = AutoModelForSequenceClassification.from_pretrained(path, config=config)
    if args.lora_rank:
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(
            model,
            LoraConfig(
                task_type="SEQ_CLS",
                r=args.lora_rank,
                lora_alpha=2 * args.lora_rank,
                lora_dropout=0.1,
                target_modules=list(LORA_TARGETS),
                modules_to_save=["classifier", "pooler"],
            ),
        )
    model.to(args.device)
    held_back, rows = pairs[:HELD_BACK], pairs[HELD_BACK:]
    trained = [p for p in model.parameters() if p.requires_grad]
    print(json.dumps({"trained_parameters": sum(p.numel() for p in trained)}))
    optimizer = torch.optim.AdamW(trained, lr=args.lr, weight_decay=0.01)
    warmup = max(args.steps // 12, 1)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / warmup) * max(0.0, 1 - s / args.steps)
    )
    loss_fn = torch.nn.BCEWithLogitsLoss()

    def encode(batch: list[tuple[str, str, int]]) -> Any:
        return tokenizer(
            [b[0] for b in batch],
            [b[1] for b in batch],
            truncation="only_second",
            max_length=MAX_LENGTH,
            padding=True,
            return_tensors="pt",
        ).to(args.device)

    def pair_auc() -> float:
        model.eval()
        with torch.no_grad():
            scores = [
                x
                for i in range(0, len(held_back), 64)
                for x in model(**encode(held_back[i : i + 64])).logits[:, 0].tolist()
            ]
        model.train()
        return float(roc_auc_score([p[2] for p in held_back], scores))

    model.train()
    start = time.time()
    for step in range(args.steps):
        first = step * args.batch % (len(rows) - args.batch)
        batch = rows[first : first + args.batch]
        loss = loss_fn(
            model(**encode(batch)).logits[:, 0], torch.tensor([float(b[2]) for b in batch], device=args.device)
        )
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trained, 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad()
        if step % 50 == 0 or step == args.steps - 1:
            print(json.dumps({"step": step, "loss": round(loss.item(), 4), "seconds": round(time.time() - start)}))
    args.pair_auc = round(pair_auc(), 4)
    print(json.dumps({"held_back_pair_auc": args.pair_auc}))
    return tokenizer, model.eval()


def save(model: Any, tokenizer: Any, args: argparse.Namespace, pairs: list[Any], argv: list[str] | None) -> None:
    """The reader in safetensors (a LoRA adapter and its head, or the whole model) and how it was trained."""
    if args.lora_rank:
        model.peft_config["default"].base_model_name_or_path = "sentence-transformers/all-MiniLM-L6-v2"
    else:
        tokenizer.save_pretrained(args.save)
    model.save_pretrained(args.save, safe_serialization=True)
    (args.save / "README.md").unlink(missing_ok=True)  # peft's empty model card
    metadata = {
        "base": "sentence-transformers/all-MiniLM-L6-v2 (lorag.models: minilm)",
        "task": "1 when the sentence (after the one before it) answers the question (one logit)",
        "pairs": {"all": len(pairs), "positive": sum(p[2] for p in pairs), "held_back": HELD_BACK},
        "held_back_pair_auc": args.pair_auc,
        "training": {k: getattr(args, k) for k in ("layers", "steps", "batch", "lr", "lora_rank")},
        "max_length": MAX_LENGTH,
        "data": "SQuAD v1.1 dev (Rajpurkar et al. 2016, CC BY-SA 4.0): the train articles of "
        "benchmarks/squad_rag.py's by-article split, none of the answerability gate's fit/check questions",
        "command": "PYTHONPATH=src python benchmarks/answerability_reader.py "
        + shlex.join(str(a).replace(f"{REPO}/", "") for a in (argv if argv is not None else sys.argv[1:])),
    }
    (args.save / "training_metadata.json").write_text(json.dumps(metadata, indent=1) + "\n", encoding="utf-8")


def load_reader(folder: Path, device: str) -> tuple[Any, Any]:
    """A reader saved by ``save``: a LoRA adapter on MiniLM (``adapter_config.json``) or a whole model."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from lorag.models import resolve_model

    if not (folder / "adapter_config.json").is_file():
        whole = AutoModelForSequenceClassification.from_pretrained(folder)
        return AutoTokenizer.from_pretrained(folder), whole.to(device).eval()
    from peft import PeftModel

    base = resolve_model("minilm")
    model = AutoModelForSequenceClassification.from_pretrained(base, num_labels=1)
    return AutoTokenizer.from_pretrained(base), PeftModel.from_pretrained(model, folder).to(device).eval()


def best_logits(rows: list[dict[str, Any]], tokenizer: Any, model: Any, device: str) -> list[float]:
    """Per question, the best logit over the sentences (with their predecessors) of its passages."""
    import torch

    scores = []
    for row in rows:
        sentences = [
            with_previous(ss, i) for p in row["passages"] for ss in [split_sentences(p)] for i in range(len(ss))
        ]
        if not sentences:
            scores.append(-10.0)
            continue
        encoded = tokenizer(
            [row["question"]] * len(sentences),
            sentences,
            truncation="only_second",
            max_length=MAX_LENGTH,
            padding=True,
            return_tensors="pt",
        ).to(device)
        with torch.no_grad():
            scores.append(float(model(**encoded).logits[:, 0].max()))
    return scores


def compare(tables: dict[str, tuple[list[list[float]], list[float], list[int]]], gate: str = "six features") -> None:
    """ROC AUC and rates of the reader's score alone, the ``gate``'s inputs and those plus the score, fit on
    *fit*."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.preprocessing import StandardScaler

    for name, (_, reader, labels) in tables.items():
        print(json.dumps({"split": name, "inputs": "reader alone", "auc": round(roc_auc_score(labels, reader), 3)}))
    for inputs, with_reader in ((gate, False), (f"{gate} + reader", True)):

        def design(name: str, with_reader: bool = with_reader) -> Any:
            features, reader, _ = tables[name]
            return np.column_stack([features, reader]) if with_reader else np.asarray(features)

        scaler = StandardScaler().fit(design("fit"))
        model = LogisticRegression(max_iter=5000).fit(scaler.transform(design("fit")), tables["fit"][2])
        for name, (features, _, labels) in tables.items():
            scores = model.predict_proba(scaler.transform(design(name)))[:, 1].tolist()
            print(json.dumps({"split": name, "inputs": inputs, "auc": round(roc_auc_score(labels, scores), 3)}))
            for threshold in THRESHOLDS:
                print(
                    json.dumps(
                        {
                            "split": name,
                            "inputs": inputs,
                            "min_answerability": threshold,
                            **rates(scores, features, labels, threshold),
                        }
                    )
                )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="folder with SQuAD's dev-v1.1.json.zip")
    parser.add_argument("--dev", type=Path, help="squad_rag.py's dev folder, to check on")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "lorag-answerability")
    parser.add_argument("--layers", type=int, default=6, help="MiniLM layers kept (of 6)")
    parser.add_argument("--steps", type=int, default=800)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, help="learning rate (default 5e-4 with LoRA, 5e-5 without)")
    parser.add_argument("--lora-rank", type=int, default=16, help="LoRA rank; 0 fine-tunes every weight")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--k", type=int, default=2)
    parser.add_argument("--save", type=Path, help="a folder to save the trained reader in (safetensors)")
    parser.add_argument("--reader", type=Path, help="a reader saved with --save: score with it, train nothing")
    parser.add_argument("--gain", action="store_true", help="compare with the ten-input gate (+ the question gain)")
    parser.add_argument("--gain-cache", type=Path, default=GAIN_CACHE, help="answerability_gate.py's --gain-cache")
    args = parser.parse_args(argv)
    if not 1 <= args.layers <= 6:
        parser.error(f"--layers must be 1-6 (MiniLM has 6), got {args.layers}")
    if args.lora_rank < 0:
        parser.error(f"--lora-rank must be >= 0 (0: fine-tune every weight), got {args.lora_rank}")
    if args.reader and args.save:
        parser.error("--reader scores a saved reader and trains nothing: give --save or --reader, not both")
    if args.reader and not any((args.reader / f).is_file() for f in ("adapter_config.json", "config.json")):
        parser.error(f"--reader {args.reader}: no reader there (adapter_config.json or config.json); --save writes one")
    args.lr = args.lr or (5e-4 if args.lora_rank else 5e-5)

    sets = write_squad_sets(args.data, args.work)
    if args.reader:
        tokenizer, model = load_reader(args.reader, args.device)
    else:
        pairs = training_pairs(args.data, sets)
        print(json.dumps({"pairs": len(pairs), "positive": sum(p[2] for p in pairs)}))
        tokenizer, model = train(pairs, args)
        if args.save:
            save(model, tokenizer, args, pairs, argv)
    folders = {**sets, **({"dev": args.dev} if args.dev else {})}
    gain = CachedGain(args.gain_cache) if args.gain else None
    tables = {}
    for name, folder in folders.items():
        rows = gate_inputs(folder, args.work / f"{name}-index", args.k)
        tables[name] = (
            [r["features"] + (gain.features(r["question"], r["passages"]) if gain else []) for r in rows],
            best_logits(rows, tokenizer, model, args.device),
            [r["label"] for r in rows],
        )
    if gain:
        gain.save()
    compare(tables, "ten inputs (six + question gain)" if gain else "six features")
    return 0


if __name__ == "__main__":
    sys.exit(main())
