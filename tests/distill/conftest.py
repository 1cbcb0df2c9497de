"""Tiny sentence-transformers for the distillation tests, with working WordPiece tokenizers.

The shared ``tiny_st_dir`` fixture's tokenizer reloads with only its 5 special tokens under transformers 5
(``BertTokenizerFast(vocab_file=...)`` ignores the file), so every text embeds the same there and similarity
distributions are flat; distillation needs texts that differ, so these models wrap the trained ``tokenizers``
object directly.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tiny_models import CORPUS


def build_st(out: Path, *, hidden: int, layers: int, vocab_size: int = 1000, seed: int = 0) -> Path:
    """A random BERT sentence-transformer (mean pooling, Normalize) with a WordPiece vocabulary of the tiny corpus."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer
    from tokenizers import BertWordPieceTokenizer
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    wordpiece = BertWordPieceTokenizer(lowercase=True)
    wordpiece.train_from_iterator(CORPUS, vocab_size=vocab_size)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=wordpiece._tokenizer,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=128,
    )
    raw = out / "_raw"
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        intermediate_size=hidden * 2,
        max_position_embeddings=128,
    )
    BertModel(config).save_pretrained(raw, safe_serialization=True)
    tokenizer.save_pretrained(raw)
    transformer = Transformer(str(raw), max_seq_length=128)
    model = SentenceTransformer(modules=[transformer, Pooling(hidden, pooling_mode="mean"), Normalize()], device="cpu")
    model.save(str(out / "model"))
    return out / "model"


@pytest.fixture(scope="session")
def distill_texts() -> list[str]:
    """40 distinct training texts (the tiny corpus's 10 sentences with variations)."""
    base = sorted(set(CORPUS))
    return [f"{t} {suffix}".strip() for suffix in ("", "again", "and more", "once more") for t in base]


@pytest.fixture(scope="session")
def teacher_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny teacher: 2 layers, 32 wide."""
    return build_st(tmp_path_factory.mktemp("teacher"), hidden=32, layers=2)


@pytest.fixture(scope="session")
def narrow_student_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Another model: 1 layer, 16 wide, the teacher's tokenizer."""
    return build_st(tmp_path_factory.mktemp("narrow"), hidden=16, layers=1, seed=1)


@pytest.fixture(scope="session")
def other_tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model with a different (smaller) vocabulary than the teacher's."""
    return build_st(tmp_path_factory.mktemp("other-tok"), hidden=32, layers=1, vocab_size=300, seed=2)
