"""Calibrate ``tool_choice="auto"`` (``lorag.llm.auto_calls``): when should a small model call a tool?

Under ``auto`` the engine forces one call when a linear rule over three signals, calibrated for its base, says so:
the model's log-probability of opening a ``<tool_call>`` after the prompt, the number of content words the user's
message shares with the best-matching tool's name and description (``shared_tool_words``), and the largest share of
a tool name's words the message contains (``tool_name_coverage``). This script computes them on BFCL prompts that
need a call (``simple_python`` and ``multiple``) and on prompts that must not call any of the offered functions
(``irrelevance``), fits the rule on a *dev* part, and reports it on a *test* part:

- dev: ``simple_python`` and ``multiple`` prompts 50-99, ``irrelevance`` prompts 0-99;
- test: prompts 0-49 of the first two (``benchmarks/tool_calls.py``'s test prompts) and ``irrelevance`` 100-149.

The rule is a logistic regression over the three signals (scikit-learn, default regularisation) cut at the
probability of best balanced accuracy (mean of the call rate where a call is needed and the no-call rate where none
is) on dev, folded into ``AutoCallRule`` weights. On dev and test it is compared with the same fit over the first two
signals, the log-probability threshold alone (all chosen on dev) and, on test, plain ``auto`` (the model calls only
when it writes the opening tag itself, read from a short greedy reply). Usage::

    python benchmarks/tool_calls_auto.py path/to/gorilla/berkeley-function-call-leaderboard/bfcl_eval/data
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import math
import platform
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from lorag.llm.auto_calls import AutoCallRule
from tool_calls import tools

#: (category, first, last + 1, needs a call) of each part.
DEV = (("simple_python", 50, 100, True), ("multiple", 50, 100, True), ("irrelevance", 0, 100, False))
TEST = (("simple_python", 0, 50, True), ("multiple", 0, 50, True), ("irrelevance", 100, 150, False))


def prompts(source: Path, part: tuple[tuple[str, int, int, bool], ...]) -> list[dict[str, Any]]:
    rows = []
    for category, first, last, needs_call in part:
        lines = (source / f"BFCL_v4_{category}.json").read_text().splitlines()[first:last]
        for question in map(json.loads, lines):
            rows.append(
                {"id": question["id"], "messages": question["question"][0], "functions": question["function"]}
                | {"needs_call": needs_call}
            )
    return rows


def opening_logprobs(engine: Any, rows: list[dict[str, Any]]) -> list[float]:
    from lorag.llm.adapters import BASE_ADAPTER
    from lorag.llm.auto_calls import continuation_logprob, opening_ids
    from lorag.llm.generation import encode_prompt
    from lorag.llm.tools import OPEN, prepare_tools

    opening = opening_ids(engine.tokenizer, OPEN)
    scores = []
    for row in rows:
        ids = encode_prompt(engine.tokenizer, None, row["messages"], prepare_tools(tools(row)))
        score = continuation_logprob(engine.scheduler.registry, ids, opening, BASE_ADAPTER)
        assert score is not None  # the bare base has no virtual tokens
        scores.append(score)
    return scores


def rates(calls: list[bool], rows: list[dict[str, Any]]) -> dict[str, float]:
    needed = [c for c, r in zip(calls, rows, strict=True) if r["needs_call"]]
    not_needed = [not c for c, r in zip(calls, rows, strict=True) if not r["needs_call"]]
    call_rate, no_call_rate = statistics.mean(needed), statistics.mean(not_needed)
    return {
        "call_rate_where_needed": round(call_rate, 3),
        "no_call_rate_where_not": round(no_call_rate, 3),
        "balanced_accuracy": round((call_rate + no_call_rate) / 2, 3),
    }


def best_cut(scores: list[float], rows: list[dict[str, Any]]) -> float:
    """The dev cut of best balanced accuracy (ties: the stricter one), midway between two scores."""
    ordered = sorted(set(scores))
    candidates = [(a + b) / 2 for a, b in itertools.pairwise(ordered)] or ordered
    return max(candidates, key=lambda t: (rates([s >= t for s in scores], rows)["balanced_accuracy"], t))


def fit_rule(features: list[tuple[float, int, float]], rows: list[dict[str, Any]], signals: int = 3) -> AutoCallRule:
    """A logistic regression over the first ``signals`` of (log-probability, shared words, name coverage) cut at its
    dev probability of best balanced accuracy, as one linear rule: ``w . x + b >= logit(cut)`` is
    ``w . x + (b - logit(cut)) >= 0``."""
    from sklearn.linear_model import LogisticRegression

    used = [f[:signals] for f in features]
    model = LogisticRegression().fit(used, [r["needs_call"] for r in rows])
    cut = best_cut(model.predict_proba(used)[:, 1].tolist(), rows)
    weights, bias = [round(w, 4) for w in model.coef_[0].tolist()], float(model.intercept_[0])
    logprob_weight, words_weight, coverage_weight = (*weights, 0.0)[:3]
    return AutoCallRule(
        logprob_weight, words_weight, round(bias - math.log(cut / (1 - cut)), 4), name_coverage_weight=coverage_weight
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", type=Path, help="bfcl_eval/data of the gorilla repository")
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--quantization", default="nf4")
    parser.add_argument("--plain-tokens", type=int, default=12, help="reply length read for plain auto's choice")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/tool_calls_auto.json"))
    args = parser.parse_args()
    from lorag.llm import LoragEngine
    from lorag.llm.auto_calls import shared_tool_words, tool_name_coverage
    from lorag.llm.tools import OPEN, prepare_tools

    engine = LoragEngine(args.model, quantization=args.quantization, device="cpu", num_threads=1)
    parts = {"dev": prompts(args.source, DEV), "test": prompts(args.source, TEST)}
    scores = {name: opening_logprobs(engine, rows) for name, rows in parts.items()}
    words = {
        name: [shared_tool_words(r["messages"], prepare_tools(tools(r))) for r in rows] for name, rows in parts.items()
    }
    coverage = {
        name: [tool_name_coverage(r["messages"], prepare_tools(tools(r))) for r in rows] for name, rows in parts.items()
    }
    features = {name: list(zip(scores[name], words[name], coverage[name], strict=True)) for name in parts}
    rule, two_signals = fit_rule(features["dev"], parts["dev"]), fit_rule(features["dev"], parts["dev"], signals=2)
    threshold = round(best_cut(scores["dev"], parts["dev"]), 2)
    plain = []
    for row in parts["test"]:
        reply = engine.generate(
            messages=row["messages"], tools=tools(row), auto_call_min_logprob=None, max_tokens=args.plain_tokens
        )
        calls = reply.tool_reply and (reply.tool_reply.tool_calls or reply.tool_reply.invalid_tool_calls)
        plain.append(bool(calls) or OPEN in reply.text)

    def decided(name: str, by: AutoCallRule) -> dict[str, float]:
        return rates([by.calls(*signals) for signals in features[name]], parts[name])

    alone = AutoCallRule.min_logprob(threshold)
    report = {
        "model": args.model,
        "quantization": args.quantization,
        "base_fingerprint": engine.base.fingerprint,
        "machine": f"{platform.processor() or platform.machine()}, {platform.system()}",
        "command": " ".join(sys.argv),
        "rule": dataclasses.asdict(rule),
        "two_signal_rule": dataclasses.asdict(two_signals),
        "logprob_threshold": threshold,
        "dev": {
            "prompts": len(parts["dev"]),
            "rule": decided("dev", rule),
            "two signals": decided("dev", two_signals),
            "log-probability alone": decided("dev", alone),
        },
        "test": {
            "prompts": len(parts["test"]),
            "rule": decided("test", rule),
            "two signals": decided("test", two_signals),
            "log-probability alone": decided("test", alone),
            "plain auto": rates(plain, parts["test"]),
        },
        "scores": {
            name: [
                {"id": r["id"], "needs_call": r["needs_call"], "logprob": round(s, 3), "shared_words": n}
                | {"name_coverage": round(c, 3)}
                for r, s, n, c in zip(rows, scores[name], words[name], coverage[name], strict=True)
            ]
            for name, rows in parts.items()
        },
    }
    engine.close()
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k != "scores"}, indent=2))


if __name__ == "__main__":
    main()
