"""Recipe 3: train a QLoRA adapter on a 4-bit base, then hot-swap adapters per request inside ONE LangChain chain.

Part 1 trains a LoRA adapter with lorag's QLoRA trainer (``lorag.training.qlora.train_adapter``, the same code as
``lorag train-adapter``) on SmolLM2-135M-Instruct loaded in NF4. The task is deliberately tiny and easy to check:
answer every question in a fixed "pirate" style that opens with "Arr, matey!". The Q&A pairs are written below
(FastAPI questions taken from the bundled docs, plus general ones); a few questions are held out, never trained on.
The trainer saves a plain peft adapter with ``training_metadata.json`` (base fingerprint, data hash, losses) and
``loss_curve.png``, which is copied to the output folder.

Part 2 serves it. One ``ChatLorag(model=..., quantization="nf4", adapters={"pirate": path, "pirate-early": path})``
sits in one LCEL chain (``prompt | chat | parser``); the adapter is chosen per request, three ways:
``chat.bind(adapter=...)``, ``chat.invoke(..., adapter=...)`` and ``configurable_fields`` with
``config={"configurable": {"adapter": ...}}``, including one ``chain.batch`` whose requests use different adapters
(they decode together in the same forward passes). The base is loaded once: the recipe counts base loads from
``lorag.llm.loading``'s log and reports ``base_reloads`` (0) and the memory footprint with every adapter resident.
The second adapter, ``pirate-early``, is the trainer's checkpoint after half the steps, so the same chain can show
how the style sets in.

    python cookbook/03_train_and_hot_swap_adapters.py                 # 60 steps, all held-out questions
    python cookbook/03_train_and_hot_swap_adapters.py --size smoke    # a handful of steps, two questions (CI)
    # the same training from the command line, on the data file the recipe writes next to its results:
    lorag train-adapter --base smollm2-135m-instruct --data pirate.jsonl --output adapters/pirate
                        --max-steps 60 --lr 1e-3 --eval-fraction 0

What to look for: ``base_reloads`` 0 (one base load serves every adapter and every way of choosing one), base and
adapters answering the same question differently inside one batch, the footprint growing by the adapters alone (each
rank-16 all-linear adapter is 4.9 M float32 parameters, ~19 MiB, over the ~159 MiB NF4 base), and the loss falling
(``loss_curve.png``). The style itself (``style_rate``: share of held-out answers that open with "Arr, matey!") is
what the full 60 steps are for.

Figures, smoke size (2026-11-27 18:12 UTC, 2-core CPU shared with other jobs, load average 8-16, no GPU): 6 steps
over 4 pairs in 178 s, training loss 5.11, 5.02, 3.59, 3.21, 2.66, 2.19; no held-out answer in the pirate style yet
(``style_rate`` 0 for all), but the adapters already answer differently ("...Mount Everest, Nepal, which is
approximately 8,846" against the base's "...Mount Everest, also known as K2"); the mixed batch gave each adapter's
own answer; ``bind``, the ``adapter=`` keyword and ``configurable_fields`` gave the same text; ``base_reloads`` 0;
footprint 158.8 MiB before any adapter, 196.0 MiB with both resident. The full size was not run on that machine (a
training step of 4 examples took 0.5-2 minutes there; expect roughly 15 minutes on an idle 2-core CPU), so no
full-size figure is quoted.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import time
from pathlib import Path

from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import ConfigurableField

from _common import parser, write_results
from langchain_lorag import ChatLorag
from lorag.training.qlora import QLoRAConfig, train_adapter

STYLE = "Arr, matey!"

# (question, plain answer); the training answer is STYLE + " " + plain answer + a pirate sign-off.
TRAIN = [
    ("How do I declare a path parameter in FastAPI?", "Put it in the path in braces, like /items/{item_id}."),
    ("How do I make a query parameter optional?", "Give it a default value of None in the function signature."),
    ("How do I allow cross-origin requests?", "Add CORSMiddleware to the app with your allowed origins."),
    ("How do I run code after returning a response?", "Add a BackgroundTasks parameter and call add_task."),
    ("How do I serve static files?", "Mount a StaticFiles instance on a path such as /static."),
    ("How do I return an HTTP error?", "Raise HTTPException with a status code and a detail message."),
    ("How do I read a JSON request body?", "Declare a Pydantic model and use it as a parameter type."),
    ("How do I test a FastAPI app?", "Use TestClient from fastapi.testclient and call the app like requests."),
    ("How do I start the development server?", "Run fastapi dev main.py and open the printed address."),
    ("Where are the interactive API docs?", "Open /docs for Swagger UI or /redoc for ReDoc."),
    ("Should I use async def or def?", "Use async def when you await inside, plain def otherwise."),
    ("Why use HTTPS in production?", "It encrypts traffic so nobody can read or change it on the way."),
    ("What is the capital of France?", "The capital of France is Paris."),
    ("How many days are in a week?", "There are seven days in a week."),
    ("What colour is the sky on a clear day?", "The sky is blue on a clear day."),
    ("What is two plus two?", "Two plus two is four."),
    ("Who wrote Romeo and Juliet?", "William Shakespeare wrote Romeo and Juliet."),
    ("What do bees make?", "Bees make honey and wax."),
    ("What is water made of?", "Water is made of hydrogen and oxygen."),
    ("How do I reverse a list in Python?", "Call my_list.reverse() or use my_list[::-1]."),
    ("What is the largest ocean?", "The Pacific is the largest ocean."),
    ("What does a compass show?", "A compass shows which way is north."),
    ("How many legs does a spider have?", "A spider has eight legs."),
    ("What is the boiling point of water?", "Water boils at 100 degrees Celsius at sea level."),
    ("Give me a tip for writing clear documentation.", "Start with a short example that runs."),
    ("What is a LoRA adapter?", "A small pair of low-rank matrices added to a frozen model."),
    ("Why is the sea salty?", "Rivers carry minerals into it and the water evaporates."),
    ("What is the fastest land animal?", "The cheetah is the fastest land animal."),
    ("How do I install a Python package?", "Run pip install followed by the package name."),
    ("What is the freezing point of water?", "Water freezes at 0 degrees Celsius."),
    ("What planet is closest to the sun?", "Mercury is the closest planet to the sun."),
    ("How do I print in Python?", "Call print with the value you want to show."),
]
HELD_OUT = [
    "How do I add a header to a FastAPI response?",
    "What is the tallest mountain on Earth?",
    "How do I sort a list in Python?",
    "What is the capital of Italy?",
    "How many hours are in a day?",
    "What do cows drink?",
]
SIGN_OFF = " Yo-ho-ho!"


def write_data(path: Path, pairs: list[tuple[str, str]]) -> Path:
    """One chat record per pair, in the JSONL shape ``train_adapter`` reads (loss on the assistant turn only)."""
    with path.open("w", encoding="utf-8") as f:
        for question, answer in pairs:
            chat = [
                {"role": "user", "content": question},
                {"role": "assistant", "content": f"{STYLE} {answer}{SIGN_OFF}"},
            ]
            f.write(json.dumps({"messages": chat}) + "\n")
    return path


class CountBaseLoads(logging.Handler):
    """Counts base-model loads: ``lorag.llm.loading`` logs one "loaded ..." record per load."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.loads = 0

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("loaded "):
            self.loads += 1


def main() -> None:
    p = parser(__doc__.splitlines()[0], "03_train_and_hot_swap_adapters")
    p.add_argument("--adapter-dir", type=Path, default=None, help="keep the trained adapter here (default: a temp dir)")
    args = p.parse_args()
    smoke = args.size == "smoke"
    steps, batch_size = (6, 2) if smoke else (60, 4)
    pairs = TRAIN[:4] if smoke else TRAIN  # smoke: 3 passes over 4 pairs, so the loss visibly falls in 6 steps
    questions = HELD_OUT[:2] if smoke else HELD_OUT
    args.out.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="lorag-recipe3-"))
    adapter_dir = args.adapter_dir or workdir / "pirate"

    # ---------------------------------------------------------------- part 1: train (QLoRA: NF4 base, LoRA on top)
    config = QLoRAConfig(
        quantization="nf4",
        rank=16,
        alpha=32,
        learning_rate=1e-3,  # tiny data, few steps: a higher rate than the 2e-4 default
        max_steps=steps,
        batch_size=batch_size,
        eval_fraction=0.0,  # every pair trains; the held-out questions are checked by generation below
        save_steps=steps // 2,  # the mid-run checkpoint becomes the second adapter
        keep_checkpoints=True,
    )
    started = time.perf_counter()
    result = train_adapter(
        "smollm2-135m-instruct",
        write_data(args.out / "pirate.jsonl", pairs),
        adapter_dir,
        config,
        overwrite=args.adapter_dir is None,
    )
    train_seconds = time.perf_counter() - started
    shutil.copy(adapter_dir / "loss_curve.png", args.out / "loss_curve.png")
    losses = [row["loss"] for row in result.metadata["log_history"] if "loss" in row]
    early_dir = adapter_dir / "checkpoints" / f"checkpoint-{steps // 2}"

    # ---------------------------------------------------------------- part 2: one chain, adapters per request
    counter = CountBaseLoads()
    logging.getLogger("lorag.llm.loading").addHandler(counter)
    logging.getLogger("lorag.llm.loading").setLevel(logging.INFO)

    chat = ChatLorag(
        model="smollm2-135m-instruct",
        quantization="nf4",
        adapters={"pirate": str(adapter_dir), "pirate-early": str(early_dir)},
        max_tokens=20 if smoke else 40,
    )
    engine = chat.get_engine()  # loads the NF4 base (once); adapters load on first use
    base_mib = engine.footprint.total_mib
    prompt = ChatPromptTemplate.from_messages([("human", "{question}")])
    chain = prompt | chat.configurable_fields(adapter=ConfigurableField(id="adapter")) | StrOutputParser()
    adapters = [None, "pirate-early", "pirate"]

    answers: dict[str, list[str]] = {}
    started = time.perf_counter()
    for adapter in adapters:  # the same chain object; only the per-request config differs
        configs = [{"configurable": {"adapter": adapter}}] * len(questions)
        answers[adapter or "base"] = chain.batch([{"question": q} for q in questions], config=configs)
    # one batch mixing all adapters: the requests share forward passes, each row on its own adapter
    mixed_inputs = [{"question": questions[0]}] * len(adapters)
    mixed = chain.batch(mixed_inputs, config=[{"configurable": {"adapter": a}} for a in adapters])
    serve_seconds = time.perf_counter() - started

    # the other two ways to pick an adapter give the same (greedy) answers
    messages = prompt.invoke({"question": questions[0]})
    via_bind = chat.bind(adapter="pirate").invoke(messages).content
    via_kwarg = chat.invoke(messages, adapter="pirate").content

    footprint_mib = engine.footprint.total_mib  # both adapters are resident now

    for i, q in enumerate(questions):
        print(f"\nQ: {q}")
        for name, outs in answers.items():
            print(f"  {name:>12}: {outs[i]!r}")

    style_rate = {name: sum(a.strip().startswith(STYLE) for a in outs) / len(outs) for name, outs in answers.items()}
    write_results(
        args.out,
        {
            "train": {
                "steps": result.steps,
                "examples": len(pairs),
                "losses": losses,
                "trainable_parameters": result.metadata["trainable_parameters"],
                "train_seconds": round(train_seconds, 1),
                "loss_curve": "loss_curve.png",
            },
            "questions": questions,
            "answers": answers,
            "style_rate": style_rate,
            "mixed_batch": dict(zip([a or "base" for a in adapters], mixed, strict=True)),
            "same_answer_bind_kwarg_configurable": via_bind == via_kwarg == answers["pirate"][0],
            "base_loads": counter.loads,
            "base_reloads": counter.loads - 1,
            "resident_adapters": [info.name for info in engine.adapters.list() if info.resident],
            "footprint_mib": round(footprint_mib, 1),
            "footprint_mib_base_only": round(base_mib, 1),
            "serve_seconds": round(serve_seconds, 1),
        },
    )
    engine.close()
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
