"""What every command that answers questions shares (``ask``, ``eval-rag``): the flags, declared once in
``AnswerOptions`` and spliced into each command by ``with_answer_options``, and the pipeline they build."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, get_type_hints

import typer

from lorag.cli import usage_error
from lorag.cli.answer_engine import ENGINE_OPTION, LlmEngine, check_engine_flags, load_engine
from lorag.cli.documents import (
    BACKEND_HELP,
    EXCLUDE_OPTION,
    FOLLOW_LINKS_OPTION,
    MAX_FILE_MB_OPTION,
    IndexBackend,
    open_index,
)
from lorag.rag.best_files import DEFAULT_CHUNKS_PER_FILE
from lorag.rag.hops import DEFAULT_HOPS, DEFAULT_HOPS_WHEN_DECLINED
from lorag.rag.pipeline import DEFAULT_ABSTAIN_CONFIDENCE, DEFAULT_K, DEFAULT_MIN_ANSWERABILITY, RagPipeline

DEFAULT_MODEL = "smollm2-135m-instruct"

# Options shared by every command that answers questions (``ask``, ``eval-rag``): same names, same defaults.
MODEL_OPTION = typer.Option(DEFAULT_MODEL, "--model", help="Chat model reference.")
QUANTIZATION_OPTION = typer.Option(
    None,
    "--quantization",
    help="The torch engine's base precision: nf4, fp4, int8 or none. Default: the one the adapter was trained at "
    "(lorag's grounded adapter: none), else nf4.",
)
ADAPTER_OPTION = typer.Option(
    None,
    "--adapter",
    help="A LoRA adapter directory to answer with, or 'none'. Default: lorag's grounded-answer adapter for "
    f"{DEFAULT_MODEL}, none for other models.",
)
EMBEDDER_OPTION = typer.Option("minilm", "--embedder", help="Embedding model reference.")
BACKEND_OPTION = typer.Option(IndexBackend.torch, "--backend", help=BACKEND_HELP)
K_OPTION = typer.Option(
    DEFAULT_K, "--k", min=1, help="Passages retrieved (with --chunks-per-file above 1: the chunks of this many files)."
)
CHUNKS_PER_FILE_OPTION = typer.Option(
    DEFAULT_CHUNKS_PER_FILE,
    "--chunks-per-file",
    min=1,
    help="The question's search reads its k x N best chunks and keeps those of the k files they rank first (on long "
    "pages the answer is often a page's second chunk; 2 helped how-to docs). 1: the top k chunks, whatever their "
    "files.",
)
MAX_TOKENS_OPTION = typer.Option(160, "--max-tokens", min=1, help="Longest answer, in tokens.")
MIN_RELEVANCE_OPTION = typer.Option(
    0.3, "--min-relevance", help="Say the documents lack the answer when no passage is this similar."
)
REPETITION_PENALTY_OPTION = typer.Option(
    1.0, "--repetition-penalty", min=0.01, help="Penalise tokens already in the prompt or answer (1.0: off)."
)
ABSTAIN_CONFIDENCE_OPTION = typer.Option(
    None,
    "--abstain-confidence",
    min=0.0,
    max=1.0,
    help="Keep the model's 'not in the documents' reply only when it is this sure of it; below, it answers anyway. "
    f"Default: {DEFAULT_ABSTAIN_CONFIDENCE}, or 1.0 (never kept: the gate decides) with the answerability gate.",
)
MIN_ANSWERABILITY_OPTION = typer.Option(
    None,
    "--min-answerability",
    min=0.0,
    max=1.0,
    help="Say the documents lack the answer when lorag's answerability gate gives no passage this score "
    f"(0: off). Default: {DEFAULT_MIN_ANSWERABILITY} with the grounded-answer adapter, off otherwise.",
)
HOPS_WHEN_DECLINED_OPTION = typer.Option(
    DEFAULT_HOPS_WHEN_DECLINED,
    "--hops-when-declined",
    min=1,
    help="Searches made before the answerability gate's decline stands: a question it declines is searched this "
    "far (follow-ups as --hops makes them) and judged again. 1: decline at once.",
)
LM_HEAD_DTYPE_OPTION = typer.Option(
    "none",
    "--lm-head-dtype",
    help="Compute the output layer from a lower-precision copy for faster CPU decoding: int8, bfloat16, or none "
    "(as loaded).",
)
HOPS_OPTION = typer.Option(
    DEFAULT_HOPS,
    "--hops",
    min=1,
    help="Searches per question: each one past the first adds the best new passage found with the question and the "
    "passage the previous one added (for questions that join facts from two passages). 1: the question's own only.",
)
CHOICES_OPTION = typer.Option(
    True,
    "--choices/--no-choices",
    help="Answer a question that names two options ('..., A or B?') with the option the model scores higher as its "
    "reply (the torch and llama.cpp engines); --no-choices always generates.",
)
NO_REPEAT_NGRAM_OPTION = typer.Option(
    0, "--no-repeat-ngram-size", min=0, help="Never repeat an n-gram of this many tokens (0: off)."
)


def adapter_folder(adapter: str | None) -> Path | None:
    """The ``--adapter`` directory (None for the default or 'none'); a missing one exits 2, before anything loads."""
    if adapter in (None, "none"):
        return None
    folder = Path(adapter)  # type: ignore[arg-type]
    if not folder.is_dir():
        raise usage_error(f"adapter {str(folder)!r} is not a directory")
    return folder


def lm_head_precision(flag: str) -> str | None:
    """The engine's ``lm_head_dtype`` for ``--lm-head-dtype`` (None for 'none'); a bad one exits 2, before anything
    loads."""
    from lorag.llm.loading import LM_HEAD_DTYPES

    if flag not in ("none", *LM_HEAD_DTYPES):
        raise usage_error(f"--lm-head-dtype must be none, {' or '.join(LM_HEAD_DTYPES)}; got {flag!r}")
    return None if flag == "none" else flag


def build_pipeline(  # type: ignore[no-untyped-def]
    index,
    *,
    model: str,
    quantization: str | None,
    adapter: str | None,
    k: int,
    max_tokens: int,
    min_relevance: float,
    chunks_per_file: int = DEFAULT_CHUNKS_PER_FILE,
    repetition_penalty: float = 1.0,
    no_repeat_ngram_size: int = 0,
    abstain_confidence: float | None = None,
    min_answerability: float | None = None,
    hops: int = DEFAULT_HOPS,
    hops_when_declined: int = DEFAULT_HOPS_WHEN_DECLINED,
    choices: bool = True,
    lm_head_dtype: str = "none",
    engine: LlmEngine = LlmEngine.torch,
):
    """Load the model and build the pipeline exactly as ``lorag ask`` answers; returns ``(pipeline, engine)``.

    ``adapter`` is a directory, ``"none"``, or None for the default (the shipped grounded adapter where it
    applies). Bad options exit 2 with the reason.
    """
    from lorag.llm.llama_cpp import LlamaCppEngine
    from lorag.rag.composition import resolve_min_answerability
    from lorag.rag.grounded import GROUNDED_ADAPTER, GroundedAdapterError, use_grounded_adapter
    from lorag.rag.pipeline import RagPipeline
    from lorag.serving import LlamaServerError

    head = lm_head_precision(lm_head_dtype)
    folder = adapter_folder(adapter)
    try:
        check_engine_flags(engine, quantization, lm_head_dtype)
        llm = load_engine(engine, model, folder, quantization, head, default_adapter=adapter is None)
        name = folder.name if folder is not None else None
        if adapter is None:
            name = use_grounded_adapter(llm)
        if isinstance(llm, LlamaCppEngine):
            llm.start()  # a missing llama-server or an adapter llama.cpp cannot load fails here, before any question
    except (ValueError, LookupError, ImportError, GroundedAdapterError, LlamaServerError, OSError) as err:
        raise usage_error(str(err)) from err
    min_answerability = resolve_min_answerability(min_answerability, grounded_adapter=name == GROUNDED_ADAPTER)
    if abstain_confidence is None:  # with the gate on, it alone decides (the model's declines are near chance)
        abstain_confidence = 1.0 if min_answerability else DEFAULT_ABSTAIN_CONFIDENCE
    if isinstance(llm, LlamaCppEngine):  # the pipeline reads log-probabilities only to weigh a no-answer reply
        llm.logprobs = abstain_confidence < 1.0
    generation: dict[str, float | int] = {}
    if repetition_penalty != 1.0:
        generation["repetition_penalty"] = repetition_penalty
    if no_repeat_ngram_size:
        generation["no_repeat_ngram_size"] = no_repeat_ngram_size
    pipeline = RagPipeline(
        index,
        llm,
        k=k,
        chunks_per_file=chunks_per_file,
        max_new_tokens=max_tokens,
        min_relevance=min_relevance,
        adapter=name,
        generation=generation,
        abstain_confidence=abstain_confidence,
        min_answerability=min_answerability,
        hops=hops,
        hops_when_declined=hops_when_declined,
        choices=choices,
    )
    return pipeline, llm


@dataclass(frozen=True)
class AnswerOptions:
    """The options of every command that answers questions (``ask``, ``eval-rag``), listed once.

    Each default is the typer option: ``with_answer_options`` makes them a command's own flags, so both commands
    take the same names and defaults and answer the same way.
    """

    model: str = MODEL_OPTION
    quantization: str | None = QUANTIZATION_OPTION
    adapter: str | None = ADAPTER_OPTION
    embedder: str = EMBEDDER_OPTION
    backend: IndexBackend = BACKEND_OPTION
    k: int = K_OPTION
    chunks_per_file: int = CHUNKS_PER_FILE_OPTION
    max_tokens: int = MAX_TOKENS_OPTION
    min_relevance: float = MIN_RELEVANCE_OPTION
    repetition_penalty: float = REPETITION_PENALTY_OPTION
    no_repeat_ngram_size: int = NO_REPEAT_NGRAM_OPTION
    abstain_confidence: float | None = ABSTAIN_CONFIDENCE_OPTION
    min_answerability: float | None = MIN_ANSWERABILITY_OPTION
    lm_head_dtype: str = LM_HEAD_DTYPE_OPTION
    engine: LlmEngine = ENGINE_OPTION
    hops: int = HOPS_OPTION
    hops_when_declined: int = HOPS_WHEN_DECLINED_OPTION
    choices: bool = CHOICES_OPTION
    follow_links: bool = FOLLOW_LINKS_OPTION
    max_file_mb: float = MAX_FILE_MB_OPTION
    exclude: list[str] | None = EXCLUDE_OPTION

    @contextmanager
    def open_pipeline(self, docs: Path | None, index_dir: Path | None, *, quiet: bool) -> Iterator[RagPipeline]:
        """Open the index and load the model as ``lorag ask`` answers; the engine closes on leaving.

        A missing ``--adapter`` exits 2 before the index syncs (minutes on a large folder); a ``ValueError`` while
        answering exits 2 too. ``quiet``: as in ``open_index``.
        """
        adapter_folder(self.adapter)
        lm_head_precision(self.lm_head_dtype)
        check_engine_flags(self.engine, self.quantization, self.lm_head_dtype)
        index = open_index(
            docs,
            index_dir,
            self.embedder,
            self.backend,
            quiet=quiet,
            follow_links=self.follow_links,
            max_file_mb=self.max_file_mb,
            exclude=self.exclude,
        )
        pipeline, engine = build_pipeline(
            index,
            model=self.model,
            quantization=self.quantization,
            adapter=self.adapter,
            k=self.k,
            chunks_per_file=self.chunks_per_file,
            max_tokens=self.max_tokens,
            min_relevance=self.min_relevance,
            repetition_penalty=self.repetition_penalty,
            no_repeat_ngram_size=self.no_repeat_ngram_size,
            abstain_confidence=self.abstain_confidence,
            min_answerability=self.min_answerability,
            hops=self.hops,
            hops_when_declined=self.hops_when_declined,
            choices=self.choices,
            lm_head_dtype=self.lm_head_dtype,
            engine=self.engine,
        )
        try:
            yield pipeline
        except ValueError as err:
            raise usage_error(str(err)) from err
        finally:
            engine.close()


def with_answer_options(command: Callable[..., None]) -> Callable[..., None]:
    """Put the ``AnswerOptions`` flags where ``command``'s keyword-only ``options`` stands; call it with them.

    Typer reads a command's flags from its signature, so they are spliced in there: one declaration, the same
    place in each command's ``--help``.
    """
    signature = inspect.signature(command, eval_str=True)
    types = get_type_hints(AnswerOptions)
    flags = [
        inspect.Parameter(
            field.name, inspect.Parameter.KEYWORD_ONLY, default=field.default, annotation=types[field.name]
        )
        for field in fields(AnswerOptions)
    ]
    parameters = [flag for p in signature.parameters.values() for flag in (flags if p.name == "options" else [p])]

    @functools.wraps(command)
    def with_options(**values: Any) -> None:
        command(options=AnswerOptions(**{flag.name: values.pop(flag.name) for flag in flags}), **values)

    with_options.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
    with_options.__annotations__ = {p.name: p.annotation for p in parameters}
    return with_options
