from __future__ import annotations

from pathlib import Path

import pytest

from tiny_models import CORPUS, build_tiny_sentence_transformer


@pytest.fixture(scope="session")
def distill_texts() -> list[str]:
    """Distinct training texts (the tiny corpus repeats its 10 sentences; variations make 40 distinct ones)."""
    base = sorted(set(CORPUS))
    return [f"{t} {suffix}" for suffix in ("", "again", "and more", "once more") for t in base]


@pytest.fixture(scope="session")
def tiny_narrow_st_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 1-layer, 16-wide BERT student with the same WordPiece tokenizer as ``tiny_st_dir`` (32 wide)."""
    return build_tiny_sentence_transformer(tmp_path_factory.mktemp("tiny-narrow"), seed=1, hidden=16, layers=1)


@pytest.fixture(scope="session")
def tiny_other_tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny BERT sentence-transformer whose tokenizer is the teacher's minus its last 100 tokens."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer
    from transformers import BertConfig, BertModel, BertTokenizerFast

    source = build_tiny_sentence_transformer(tmp_path_factory.mktemp("tiny-src"))
    raw = tmp_path_factory.mktemp("tiny-other-raw")
    full = BertTokenizerFast.from_pretrained(str(source)).get_vocab()
    vocab = sorted(full, key=full.__getitem__)[:-100]
    (raw / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tokenizer = BertTokenizerFast(vocab_file=str(raw / "vocab.txt"), model_max_length=128)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    BertModel(config).save_pretrained(raw, safe_serialization=True)
    tokenizer.save_pretrained(raw)
    modules = [Transformer(str(raw), max_seq_length=128), Pooling(32, pooling_mode="mean"), Normalize()]
    out = tmp_path_factory.mktemp("tiny-other") / "model"
    SentenceTransformer(modules=modules, device="cpu").save(str(out))
    return out
