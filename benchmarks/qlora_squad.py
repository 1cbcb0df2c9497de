"""QLoRA on SQuAD v1.1: does a 4-bit adapter teach SmolLM2-135M-Instruct to answer with a short span?

Recipe (also usable as a cookbook example):

1. Split the SQuAD v1.1 dev articles into train and test articles, so no article (and no paragraph) is seen in
   both. Training questions come from the train articles, the evaluated questions from the test articles.
2. Ask the 4-bit (NF4) base model each test question with its paragraph through the chat template, greedy
   decoding, and score exact match and token F1 with the official SQuAD normalisation.
3. Train a LoRA adapter with ``lorag.training.qlora.train_adapter`` on the same 4-bit base from chat records whose
   assistant turn is the gold answer span.
4. Ask the same questions again through base + adapter and score them the same way.

Usage (from the repository root)::

    PYTHONPATH=src python benchmarks/qlora_squad.py --data ../shared/data/squad-v1.1

Writes ``benchmarks/results/qlora_squad.md`` and ``benchmarks/results/qlora_squad_loss.png``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import multiprocessing
import platform
import random
import re
import shutil
import sys
import time
import zipfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from lorag.evaluation.answers import exact_match, f1_score  # the official SQuAD v1.1 normalisation

REPO = Path(__file__).resolve().parents[1]

INSTRUCTION = "Answer the question with a short span copied from the text. Give only the span."


@dataclass(frozen=True)
class Question:
    qid: str
    article: str
    context: str
    question: str
    answers: tuple[str, ...]
    answer_start: int


# --------------------------------------------------------------------------- SQuAD data and official metric


def load_squad(data_dir: Path) -> dict[str, list[Question]]:
    """Questions grouped by article title, from ``dev-v1.1.json`` (plain or inside its zip)."""
    plain = data_dir / "dev-v1.1.json"
    if plain.is_file():
        raw = json.loads(plain.read_text(encoding="utf-8"))
    else:
        with zipfile.ZipFile(data_dir / "dev-v1.1.json.zip") as zf:
            raw = json.loads(zf.read("dev-v1.1.json"))
    by_article: dict[str, list[Question]] = {}
    for article in raw["data"]:
        qs = by_article.setdefault(article["title"], [])
        for para in article["paragraphs"]:
            for qa in para["qas"]:
                answers = tuple(a["text"] for a in qa["answers"])
                start = qa["answers"][0]["answer_start"]
                qs.append(Question(qa["id"], article["title"], para["context"], qa["question"], answers, start))
    return by_article


def score(predictions: dict[str, str], questions: list[Question]) -> tuple[float, float]:
    """(exact match, F1) in percent, each the max over a question's gold answers, averaged over questions."""
    em = sum(max(exact_match(predictions[q.qid], a) for a in q.answers) for q in questions)
    f1 = sum(max(f1_score(predictions[q.qid], a) for a in q.answers) for q in questions)
    return 100 * em / len(questions), 100 * f1 / len(questions)


# --------------------------------------------------------------------------- prompts and generation


def messages_for(q: Question, context: str | None = None) -> list[dict[str, str]]:
    text = q.context if context is None else context
    return [{"role": "user", "content": f"{text}\n\nQuestion: {q.question}\n{INSTRUCTION}"}]


def excerpt(q: Question, rng: random.Random) -> str:
    """The sentence holding the first gold answer and one neighbouring sentence, in paragraph order.

    Training on excerpts instead of whole paragraphs halves the tokens per example, which is what makes the
    run fit a CPU budget; the neighbour sentence keeps a distractor, so the span still has to be found.
    """
    bounds = [0] + [m.end() for m in re.finditer(r"(?<=[.!?])\s+", q.context)] + [len(q.context)]
    sentences = [(a, b) for a, b in itertools.pairwise(bounds) if b > a]
    hit = next(i for i, (a, b) in enumerate(sentences) if a <= q.answer_start < b)
    end_of_answer = q.answer_start + len(q.answers[0])
    last = next((i for i, (a, b) in enumerate(sentences) if a < end_of_answer <= b), hit)
    first = hit
    if rng.random() < 0.5 and first > 0:
        first -= 1
    elif last + 1 < len(sentences):
        last += 1
    elif first > 0:
        first -= 1
    return q.context[sentences[first][0] : sentences[last][1]].strip()


def clean_answer(text: str) -> str:
    """First line of the reply, without surrounding spaces; the same for base and adapter."""
    lines = text.strip().splitlines()
    return lines[0].strip() if lines else ""


def load_nf4(model_path: str) -> Any:
    import torch
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    quant = BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.float32,
    )
    return AutoModelForCausalLM.from_pretrained(model_path, quantization_config=quant, dtype=torch.float32).eval()


def answer_questions(
    model_path: str,
    adapter_dir: str | None,
    questions: list[Question],
    batch_size: int,
    max_new_tokens: int,
    threads: int = 0,
) -> tuple[dict[str, str], float]:
    """Answers of the NF4 base (plus the adapter, merged) and the seconds they took.

    The NF4 weights are dequantized once to float32 before answering: the same numbers the 4-bit layers
    compute with (their compute dtype is float32), without re-dequantizing every layer at every decoding step,
    which is what makes 4-bit generation slow on a CPU. The adapter is merged into those weights.
    """
    import torch
    from peft import PeftModel
    from transformers import AutoTokenizer

    if threads:
        torch.set_num_threads(threads)
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    model = load_nf4(model_path)
    model.dequantize()
    if adapter_dir is not None:
        model = PeftModel.from_pretrained(model, adapter_dir).merge_and_unload()
    model.eval()
    started = time.perf_counter()
    label = "adapter" if adapter_dir else "base"
    preds = generate_answers(
        model, tokenizer, questions, batch_size=batch_size, max_new_tokens=max_new_tokens, label=label
    )
    return preds, time.perf_counter() - started


def generate_answers(
    model: Any, tokenizer: Any, questions: list[Question], *, batch_size: int, max_new_tokens: int, label: str
) -> dict[str, str]:
    """Greedy answers, batched with left padding; prompts are sorted by length so batches pad little."""
    import torch
    from tqdm.auto import tqdm

    tokenizer.padding_side = "left"
    prompts = {
        q.qid: tokenizer.apply_chat_template(messages_for(q), tokenize=False, add_generation_prompt=True)
        for q in questions
    }
    order = sorted(questions, key=lambda q: len(prompts[q.qid]))
    out: dict[str, str] = {}
    for start in tqdm(range(0, len(order), batch_size), desc=f"answering ({label})", unit="batch"):
        batch = order[start : start + batch_size]
        enc = tokenizer([prompts[q.qid] for q in batch], return_tensors="pt", padding=True, add_special_tokens=False)
        with torch.no_grad():
            gen = model.generate(
                **enc,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.eos_token_id,
            )
        for q, row in zip(batch, gen[:, enc["input_ids"].shape[1] :], strict=True):
            out[q.qid] = clean_answer(tokenizer.decode(row, skip_special_tokens=True))
    return out


# --------------------------------------------------------------------------- the benchmark


def split_articles(by_article: dict[str, list[Question]], n_test: int, seed: int) -> tuple[list[str], list[str]]:
    titles = sorted(by_article)
    random.Random(seed).shuffle(titles)
    return titles[n_test:], titles[:n_test]


def write_training_jsonl(
    path: Path, questions: list[Question], tokenizer: Any, n: int, max_prompt_tokens: int, seed: int
) -> int:
    """Chat records (paragraph excerpt + question -> first gold answer) whose prompt fits ``max_prompt_tokens``."""
    pool = list(questions)
    rng = random.Random(seed)
    rng.shuffle(pool)
    written = 0
    with open(path, "w", encoding="utf-8") as f:
        for q in pool:
            if written >= n:
                break
            messages = messages_for(q, excerpt(q, rng))
            if q.answers[0] not in messages[0]["content"]:
                continue
            prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            if len(tokenizer(prompt, add_special_tokens=False)["input_ids"]) > max_prompt_tokens:
                continue
            record = {"messages": [*messages, {"role": "assistant", "content": q.answers[0]}]}
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
            written += 1
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "squad-v1.1")
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/lorag-qlora-squad"))
    parser.add_argument("--results", type=Path, default=REPO / "benchmarks" / "results")
    parser.add_argument("--test-articles", type=int, default=12)
    parser.add_argument("--eval-questions", type=int, default=300)
    parser.add_argument("--train-examples", type=int, default=44)
    parser.add_argument("--max-prompt-tokens", type=int, default=160)
    parser.add_argument("--max-steps", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--grad-accum", type=int, default=1)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument("--alpha", type=int, default=32)
    parser.add_argument("--eval-fraction", type=float, default=0.09)
    parser.add_argument("--eval-batch-size", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process (0: torch's default)")
    parser.add_argument("--workers", type=int, default=2, help="processes that answer questions in parallel")
    parser.add_argument("--no-write", action="store_true", help="print the table only (for trial runs)")
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="reuse base answers, adapter and adapter answers already in --work-dir from a run with the same settings",
    )
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    import torch
    from transformers import AutoTokenizer

    from lorag.fingerprint import directory_fingerprint
    from lorag.models import resolve_model
    from lorag.training.qlora import QLoRAConfig, train_adapter
    from lorag.training.sft_data import file_sha256

    if args.threads:
        torch.set_num_threads(args.threads)
    started = time.perf_counter()
    by_article = load_squad(args.data)
    train_titles, test_titles = split_articles(by_article, args.test_articles, args.seed)
    assert not set(train_titles) & set(test_titles)
    test_pool = [q for t in test_titles for q in by_article[t]]
    eval_qs = random.Random(args.seed).sample(test_pool, min(args.eval_questions, len(test_pool)))
    train_pool = [q for t in train_titles for q in by_article[t]]
    test_contexts = {q.context for q in test_pool}
    assert not any(q.context in test_contexts for q in train_pool), "a paragraph occurs in both splits"

    model_path = resolve_model(args.model)
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    args.work_dir.mkdir(parents=True, exist_ok=True)

    # 1. the base model answers in worker processes while the adapter trains (the two are independent)
    def answer_in_workers(adapter: str | None) -> list[Any]:
        pool = ProcessPoolExecutor(max_workers=args.workers, mp_context=multiprocessing.get_context("spawn"))
        chunks = [eval_qs[i :: args.workers] for i in range(args.workers)]
        jobs = [
            pool.submit(
                answer_questions, model_path, adapter, c, args.eval_batch_size, args.max_new_tokens, args.threads
            )
            for c in chunks
        ]
        pool.shutdown(wait=False)
        return jobs

    def collect(jobs: list[Any]) -> tuple[dict[str, str], float]:
        preds: dict[str, str] = {}
        seconds = 0.0
        for job in jobs:
            part, took = job.result()
            preds.update(part)
            seconds = max(seconds, took)
        return preds, seconds

    def saved_answers(name: str) -> dict[str, str] | None:
        path = args.work_dir / name
        if not (args.reuse and path.is_file()):
            return None
        preds = json.loads(path.read_text())
        return preds if set(preds) == {q.qid for q in eval_qs} else None

    reused: list[str] = []
    base_saved = saved_answers("base_predictions.json")
    base_jobs = answer_in_workers(None) if base_saved is None else []

    # 2. train the adapter on the 4-bit base
    data_path = args.work_dir / "squad_train.jsonl"
    n_train = write_training_jsonl(
        data_path, train_pool, tokenizer, args.train_examples, args.max_prompt_tokens, args.seed
    )
    adapter_dir = args.work_dir / "adapter"
    config = QLoRAConfig(
        quantization="nf4",
        rank=args.rank,
        alpha=args.alpha,
        learning_rate=args.lr,
        max_steps=args.max_steps,
        batch_size=args.batch_size,
        grad_accum=args.grad_accum,
        eval_fraction=args.eval_fraction,
        eval_steps=max(1, args.max_steps // 3),
        max_length=args.max_prompt_tokens + 48,
        seed=args.seed,
    )
    meta_path = adapter_dir / "training_metadata.json"
    meta = json.loads(meta_path.read_text()) if args.reuse and meta_path.is_file() else None
    if meta is not None and meta["data_sha256"] == file_sha256(data_path) and meta["hyperparameters"] == asdict(config):
        reused.append("the trained adapter")
    else:
        meta = train_adapter(args.model, data_path, adapter_dir, config, overwrite=True).metadata

    # 3. base + adapter answer; the adapter's workers start while the base's may still run
    tuned_saved = saved_answers("adapter_predictions.json")
    tuned_jobs = answer_in_workers(str(adapter_dir)) if tuned_saved is None else []
    if base_saved is None:
        base_preds, base_time = collect(base_jobs)
        (args.work_dir / "base_predictions.json").write_text(json.dumps(base_preds, indent=1))
    else:
        base_preds, base_time = base_saved, float("nan")
        reused.append("the base answers")
    base_em, base_f1 = score(base_preds, eval_qs)
    logging.info("base: EM %.1f F1 %.1f (%.0f s)", base_em, base_f1, base_time)
    if tuned_saved is None:
        tuned_preds, tuned_time = collect(tuned_jobs)
        (args.work_dir / "adapter_predictions.json").write_text(json.dumps(tuned_preds, indent=1))
    else:
        tuned_preds, tuned_time = tuned_saved, float("nan")
        reused.append("the adapter answers")
    tuned_em, tuned_f1 = score(tuned_preds, eval_qs)
    logging.info("adapter: EM %.1f F1 %.1f (%.0f s)", tuned_em, tuned_f1, tuned_time)
    total = time.perf_counter() - started

    reuse_note = (
        f"\n\nWith `--reuse`, this invocation took {', '.join(reused)} from an earlier run with the same settings "
        f"in `{args.work_dir}` (times of reused parts are not re-measured: nan)."
        if reused
        else ""
    )
    ratio = tuned_f1 / base_f1 if base_f1 > 0 else float("inf")
    examples = "\n".join(
        f"| {q.question} | {q.answers[0]} | {base_preds[q.qid]} | {tuned_preds[q.qid]} |" for q in eval_qs[:8]
    ).replace("\n\n", " ")
    command = "PYTHONPATH=src python benchmarks/qlora_squad.py " + " ".join(argv if argv is not None else sys.argv[1:])
    table = f"""# QLoRA on SQuAD v1.1 (benchmarks/qlora_squad.py)

- date: {datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}
- machine: {platform.machine()}, 2 cores, 24 GiB, no GPU; **shared with 4 other engineers' jobs during the run**, so
  times are slower and noisier than on an idle machine (torch {torch.__version__}, {torch.get_num_threads()} threads)
- command: `{command.strip()}`
- model: `{args.model}` in 4-bit NF4 (double quantization, float32 compute), fingerprint
  `{directory_fingerprint(model_path)}`. Training runs on the NF4 layers. For answering, the NF4 weights are
  dequantized once to float32 (the numbers the 4-bit layers compute with) and the adapter is merged into them, so
  generation does not re-dequantize every layer at every step; base and adapter are answered the same way. The base
  answers in worker processes while the adapter trains.
- split by article (seed {args.seed}): {len(train_titles)} train articles, {len(test_titles)} test articles; no article
  and no paragraph in both. {len(eval_qs)} test questions sampled from the {len(test_pool)} of the test articles.
- prompt: the chat template with one user turn: paragraph, `Question: ...`, and "{INSTRUCTION}"; greedy decoding,
  at most {args.max_new_tokens} new tokens, the reply's first line is the answer (same post-processing for both)
- metric: the official SQuAD v1.1 normalisation, exact match and token F1, max over gold answers

| model | exact match | F1 | answer time (s, slowest of {args.workers} workers) |
| --- | ---: | ---: | ---: |
| base (NF4) | {base_em:.1f} | {base_f1:.1f} | {base_time:.0f} |
| base (NF4) + LoRA adapter | {tuned_em:.1f} | {tuned_f1:.1f} | {tuned_time:.0f} |

**adapter F1 / base F1 = {ratio:.2f}x** (target: at least 1.5x). The base answered while the adapter trained, so
its answer time is not comparable with the adapter's.

Training (`lorag.training.qlora.train_adapter`): {n_train} chat records from the train articles, each with an
excerpt of its paragraph (the answer's sentence and one neighbour, to halve the tokens per step on this CPU; prompt
at most {args.max_prompt_tokens} tokens; assistant turn = the first gold answer; loss on the assistant tokens only),
{meta["n_train_examples"]} for training and {meta["n_eval_examples"]} held out for the eval loss; LoRA r={args.rank},
alpha={args.alpha}, dropout {config.dropout}, all linear layers; lr {args.lr} cosine, batch {args.batch_size} x
grad-accum {args.grad_accum}, {meta["steps"]} optimizer steps ({meta["epochs"]:.2f} epochs) in
**{meta["train_time_s"] / 60:.1f} minutes**; final train loss {meta["final_train_loss"]:.3f}, final eval loss
{meta["final_eval_loss"]:.3f}. Trainable parameters: {meta["trainable_parameters"]:,} of {meta["total_parameters"]:,}.
Whole benchmark: {total / 60:.1f} minutes.{reuse_note}

![loss curve](qlora_squad_loss.png)

First test questions:

| question | gold | base | adapter |
| --- | --- | --- | --- |
{examples}
"""
    print(table)
    if not args.no_write:
        args.results.mkdir(parents=True, exist_ok=True)
        (args.results / "qlora_squad.md").write_text(table, encoding="utf-8")
        shutil.copyfile(adapter_dir / "loss_curve.png", args.results / "qlora_squad_loss.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
