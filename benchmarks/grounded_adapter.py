"""Rebuild lorag's shipped grounded-answer adapter from scratch (``src/lorag/adapters/grounded-smollm2-135m-instruct``).

1. ``benchmarks/squad_rag.py`` splits SQuAD v1.1 dev by article and writes chat records from the *train* articles
   only, in lorag's exact RAG prompt: the gold paragraph among BM25-retrieved distractors at a random position, the
   target the gold answer with its citation (``"Westwood One [2]"``); half of the questions also get an unanswerable
   twin over the same distractors with the gold swapped out (target "The documents do not contain the answer."), so
   the adapter learns to decline by reading whether the answer is there.
   With ``--howto DIR...``, ``benchmarks/howto_records.py`` adds how-to questions over documentation folders
   (``benchmarks/data/howto/<name>``: Markdown docs chunked by headers, passages from lorag's own index), shuffled in
   with the SQuAD records.
2. ``lorag train-adapter`` trains a LoRA adapter on them (the command is printed and recorded).
3. The weights are stored as bfloat16 (half the bytes; LoRA deltas lose nothing that greedy answers notice, which
   ``benchmarks/rag_answers.py`` measures with the shipped file), and ``training_metadata.json`` gains a
   ``provenance`` record: data source and licence, split, record counts, and the exact commands.

Usage (from the repository root; about an hour on 2 CPU cores)::

    PYTHONPATH=src python benchmarks/grounded_adapter.py --data ../shared/data/squad-v1.1
"""

from __future__ import annotations

import argparse
import json
import random
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUTPUT = REPO / "src" / "lorag" / "adapters" / "grounded-smollm2-135m-instruct"
QUESTIONS = 520
TWIN_SHARE = 0.5
HOWTO_SEED = 17  # the order the SQuAD and how-to records are mixed in
# Full-precision base under bf16 autocast: on this project's CPU a step costs about half of an NF4 (QLoRA) step.
TRAIN_OPTIONS = [
    "--quantization", "none",
    "--bf16",
    "--rank", "8",
    "--lora-alpha", "16",
    "--lr", "1e-3",
    "--batch-size", "4",
    "--max-length", "1024",
    "--eval-fraction", "0.03",
    "--eval-steps", "30",
    "--epochs", "1",
]  # fmt: skip


def to_bfloat16(folder: Path) -> None:
    """Store the adapter's tensors as bfloat16 (loaded back into the base's dtype by peft)."""
    import torch
    from safetensors.torch import load_file, save_file

    path = folder / "adapter_model.safetensors"
    tensors = {k: v.to(torch.bfloat16).contiguous() for k, v in load_file(path).items()}
    save_file(tensors, path, metadata={"format": "pt"})


def read_lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines(keepends=True)


def relative(command: str) -> str:
    """A recorded command without this checkout's absolute path."""
    return command.replace(f"{REPO}/", "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="folder with SQuAD's dev-v1.1.json.zip")
    parser.add_argument("--questions", type=int, default=QUESTIONS, help="training questions (train articles)")
    parser.add_argument("--twin-share", type=float, default=TWIN_SHARE, help="questions with an unanswerable twin")
    parser.add_argument(
        "--howto", type=Path, nargs="*", default=[], help="how-to sets (docs/ + questions.jsonl) to train on too"
    )
    parser.add_argument("--output", type=Path, default=OUTPUT)
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "lorag-grounded")
    parser.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="more `lorag train-adapter` options")
    args = parser.parse_args(argv)

    prepare = [
        sys.executable, str(REPO / "benchmarks" / "squad_rag.py"), "--data", str(args.data), "--out", str(args.work),
        "--train-questions", str(args.questions), "--train-twin-share", str(args.twin_share),
    ]  # fmt: skip
    howto = [
        sys.executable, str(REPO / "benchmarks" / "howto_records.py"), *map(str, args.howto),
        "--out", str(args.work / "howto.jsonl"), "--work", str(args.work / "howto-index"),
        "--twin-share", str(args.twin_share),
    ]  # fmt: skip
    data = args.work / ("train-with-howto.jsonl" if args.howto else "train.jsonl")
    train = [
        sys.executable, "-m", "lorag", "train-adapter", "--base", "smollm2-135m-instruct",
        "--data", str(data), "--output", str(args.output), "--overwrite",
        *TRAIN_OPTIONS, *args.extra,
    ]  # fmt: skip
    steps = (prepare, howto) if args.howto else (prepare,)
    for command in steps:
        print("$", shlex.join(command), file=sys.stderr, flush=True)
        subprocess.run(command, check=True)
    if args.howto:
        mixed = [*read_lines(args.work / "train.jsonl"), *read_lines(args.work / "howto.jsonl")]
        random.Random(HOWTO_SEED).shuffle(mixed)
        data.write_text("".join(mixed), encoding="utf-8")
    print("$", shlex.join(train), file=sys.stderr, flush=True)
    subprocess.run(train, check=True)
    to_bfloat16(args.output)
    (args.output / "README.md").unlink(missing_ok=True)  # peft's blank model card, naming this machine's paths
    metadata_file = args.output / "training_metadata.json"
    metadata = json.loads(metadata_file.read_text(encoding="utf-8"))
    split = json.loads((args.work / "split.json").read_text(encoding="utf-8"))
    metadata["data_path"] = (
        f"{data.name} written by "
        + (
            "benchmarks/squad_rag.py and benchmarks/howto_records.py, mixed"
            if args.howto
            else "benchmarks/squad_rag.py"
        )
        + " (see provenance)"
    )
    metadata["provenance"] = {
        "data": "SQuAD v1.1 dev (Rajpurkar et al. 2016), CC BY-SA 4.0; the train articles of benchmarks/squad_rag.py"
        + "".join(f"; how-to questions over {relative(str(d.resolve()))} (see its SOURCE.md)" for d in args.howto),
        "train_articles": split["train"],
        "held_out_articles": {"dev": split["dev"], "test": split["test"]},
        "questions": args.questions,
        "twin_share": args.twin_share,
        "weights_dtype": "bfloat16",
        "rebuild": "PYTHONPATH=src python benchmarks/grounded_adapter.py --data ../shared/data/squad-v1.1"
        + (f" --questions {args.questions}" if args.questions != QUESTIONS else "")
        + (f" --twin-share {args.twin_share}" if args.twin_share != TWIN_SHARE else "")
        + (" --howto " + " ".join(relative(str(d.resolve())) for d in args.howto) if args.howto else ""),
        "commands": [relative("python " + shlex.join(command[1:])) for command in steps]
        + [relative("lorag " + shlex.join(train[3:]))],
    }
    metadata_file.write_text(json.dumps(metadata, indent=2) + "\n", encoding="utf-8")
    print(f"adapter written to {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
