"""Function calling on BFCL's ``simple_python`` and ``multiple`` prompts: grammar-constrained calls against free ones.

Each prompt offers its BFCL functions (one, or two to four for ``multiple``) through the chat template and forces a
call (``tool_choice="required"``); the two runs differ only in ``constrain_tools``. Scores, per run:

- parseable: the reply holds a ``<tool_call>`` block that reads as a call (JSON object with a name and arguments);
- schema-valid: that call names an offered function and its arguments validate against the function's schema;
- right function: its name is the ground truth's;
- argument match: its arguments match the ground truth as BFCL's AST checker matches them (every given argument is
  a parameter and one of its accepted values, strings compared after BFCL's standardisation; every required one is
  given);
- grammar ms/token and its share of decode time (decode = the generation's wall time less its prefill).

Data: ``benchmarks/data/bfcl/`` (see its SOURCE.md), made by ``extract``. Usage::

    python benchmarks/tool_calls.py extract path/to/bfcl_eval/data --n 50
    python benchmarks/tool_calls.py run --out benchmarks/results/tool_calls.json
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

DATA = Path(__file__).parent / "data" / "bfcl" / "questions.jsonl"
CATEGORIES = ("simple_python", "multiple")
#: BFCL writes Python type names in its schemas; their JSON-schema spellings ("any" places no constraint).
TYPES = {"dict": "object", "float": "number", "tuple": "array", "any": None}


def extract(source: Path, n: int) -> None:
    """The first ``n`` prompts of each category, each with its functions and ground truth, in one JSONL file."""
    rows = []
    for category in CATEGORIES:
        questions = (source / f"BFCL_v4_{category}.json").read_text().splitlines()[:n]
        answers = (source / "possible_answer" / f"BFCL_v4_{category}.json").read_text().splitlines()[:n]
        for question, answer in zip(map(json.loads, questions), map(json.loads, answers), strict=True):
            assert question["id"] == answer["id"], (question["id"], answer["id"])
            rows.append(
                {
                    "id": question["id"],
                    "category": category,
                    "messages": question["question"][0],
                    "functions": question["function"],
                    "ground_truth": answer["ground_truth"],
                }
            )
    DATA.parent.mkdir(parents=True, exist_ok=True)
    DATA.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
    print(f"wrote {len(rows)} prompts to {DATA}")


def json_schema(bfcl: Any) -> Any:
    """A BFCL parameter schema in JSON-schema spelling (types renamed, its ``optional`` notes dropped)."""
    if isinstance(bfcl, list):
        return [json_schema(item) for item in bfcl]
    if not isinstance(bfcl, dict):
        return bfcl
    out = {key: value for key, value in bfcl.items() if key != "optional"}
    if isinstance(bfcl.get("properties"), dict):
        out["properties"] = {name: json_schema(sub) for name, sub in bfcl["properties"].items()}
    if "items" in bfcl:
        out["items"] = json_schema(bfcl["items"])
    if isinstance(bfcl.get("type"), str) and bfcl["type"] in TYPES:
        renamed = TYPES[bfcl["type"]]
        if renamed is None:
            del out["type"]
        else:
            out["type"] = renamed
    return out


def tools(row: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {"name": f["name"], "description": f.get("description", ""), "parameters": json_schema(f["parameters"])}
        for f in row["functions"]
    ]


def _standard(value: Any) -> Any:
    """BFCL's string standardisation (spaces and ,./-_*^ dropped, lower case), applied inside lists and dicts."""
    if isinstance(value, str):
        return re.sub(r"[ ,./\-_*^]", "", value).lower().replace("'", '"')
    if isinstance(value, list | tuple):
        return [_standard(v) for v in value]
    if isinstance(value, dict):
        return {k: _standard(v) for k, v in value.items()}
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return float(value)  # an int where a float is expected counts, as in BFCL
    return value


def arguments_match(arguments: dict[str, Any], accepted: dict[str, list[Any]]) -> bool:
    if set(arguments) - set(accepted):
        return False
    for name, values in accepted.items():
        if name not in arguments:
            if "" not in values:
                return False
        elif _standard(arguments[name]) not in [_standard(v) for v in values if v != ""]:
            return False
    return True


@contextmanager
def timers(engine: Any) -> Iterator[dict[str, float]]:
    """Accumulate the time spent in grammar masks and in prefills while the block runs."""
    from lorag.llm import structured

    spent = {"grammar": 0.0, "prefill": 0.0}
    grammar_call = structured.GrammarConstraint.__call__
    prefill = engine.scheduler._prefill

    def timed_grammar(self: Any, input_ids: Any, scores: Any) -> Any:
        start = time.perf_counter()
        try:
            return grammar_call(self, input_ids, scores)
        finally:
            spent["grammar"] += time.perf_counter() - start

    def timed_prefill(active: Any) -> None:
        start = time.perf_counter()
        try:
            prefill(active)
        finally:
            spent["prefill"] += time.perf_counter() - start

    structured.GrammarConstraint.__call__ = timed_grammar  # type: ignore[method-assign]
    engine.scheduler._prefill = timed_prefill
    try:
        yield spent
    finally:
        structured.GrammarConstraint.__call__ = grammar_call  # type: ignore[method-assign]
        del engine.scheduler._prefill


def score(row: dict[str, Any], reply: Any) -> dict[str, bool]:
    import jsonschema

    offered = {tool["name"]: tool["parameters"] for tool in tools(row)}
    calls = reply.tool_calls
    parseable = bool(calls) and not reply.invalid_tool_calls
    call = calls[0] if calls else None
    valid = False
    if parseable and call.name in offered:
        try:
            jsonschema.validate(call.arguments, offered[call.name])
            valid = True
        except jsonschema.ValidationError:
            valid = False
    (truth,) = row["ground_truth"]
    ((name, accepted),) = truth.items()
    right = call is not None and call.name == name
    return {
        "parseable": parseable,
        "schema_valid": valid,
        "right_function": right,
        "argument_match": right and arguments_match(call.arguments, accepted),
    }


def run(args: argparse.Namespace) -> None:
    from lorag.llm import LoragEngine

    rows = [json.loads(line) for line in DATA.read_text().splitlines()][: args.limit]
    engine = LoragEngine(args.model, quantization=args.quantization, device="cpu", num_threads=args.threads)
    engine.generate("warm up", max_tokens=2)
    report: dict[str, Any] = {
        "model": args.model,
        "quantization": args.quantization,
        "threads": args.threads,
        "prompts": len(rows),
        "by_category": {c: sum(r["category"] == c for r in rows) for c in CATEGORIES},
        "machine": f"{platform.processor() or platform.machine()}, {platform.system()}",
        "command": " ".join(sys.argv),
        "runs": {},
        "replies": {},
    }
    for mode in ("constrained", "unconstrained"):
        scores, tokens, wall = [], 0, 0.0
        replies = []
        with timers(engine) as spent:
            for row in rows:
                start = time.perf_counter()
                result = engine.generate(
                    messages=row["messages"],
                    tools=tools(row),
                    tool_choice="required",
                    constrain_tools=mode == "constrained",
                    max_tokens=args.max_tokens,
                )
                wall += time.perf_counter() - start
                tokens += result.usage.completion_tokens
                scores.append(score(row, result.tool_reply))
                replies.append({"id": row["id"], "text": result.text, **scores[-1]})
                print(mode, row["id"], scores[-1], flush=True)
        decode = wall - spent["prefill"]
        report["runs"][mode] = {
            **{k: statistics.mean(s[k] for s in scores) for k in scores[0]},
            "completion_tokens": tokens,
            "decode_ms_per_token": 1000 * decode / tokens,
            "grammar_ms_per_token": 1000 * spent["grammar"] / tokens,
            "grammar_share_of_decode": spent["grammar"] / decode,
        }
        report["replies"][mode] = replies
    engine.close()
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report["runs"], indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    make = sub.add_parser("extract", help="write benchmarks/data/bfcl/questions.jsonl from BFCL's data folder")
    make.add_argument("source", type=Path, help="bfcl_eval/data of the gorilla repository")
    make.add_argument("--n", type=int, default=50, help="prompts per category")
    bench = sub.add_parser("run", help="score constrained and unconstrained calls")
    bench.add_argument("--model", default="smollm2-135m-instruct")
    bench.add_argument("--quantization", default="nf4")
    bench.add_argument("--threads", type=int, default=1)
    bench.add_argument("--max-tokens", type=int, default=160)
    bench.add_argument("--limit", type=int, default=None, help="only the first N prompts (a smoke run)")
    bench.add_argument("--out", default="benchmarks/results/tool_calls.json")
    args = parser.parse_args()
    if args.command == "extract":
        extract(args.source, args.n)
    else:
        run(args)


if __name__ == "__main__":
    main()
