"""Tiny random models built from configs in seconds, so unit tests need no downloads.

Both models get real trained tokenizers (byte-level BPE for the causal LM, WordPiece for the encoder) so that
any unicode text tokenizes and offsets behave as they do with production tokenizers.
"""

from __future__ import annotations

from pathlib import Path

CHATML_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "Paris is the capital of France. Madrid is the capital of Spain.",
    "Retrieval augmented generation answers questions from documents.",
    "LoRA adapters add low-rank updates to a frozen base model.",
    "BM25 ranks documents by term frequency and inverse document frequency.",
    "Dense retrieval embeds queries and documents into one vector space.",
    "El zorro marrón salta sobre el perro perezoso. ¿Dónde está la biblioteca?",
    "def hello(name):\n    return f'hello {name}'\n",
    "# Heading\n\nSome *markdown* text with `code` and a [link](http://example.com).",
    "Numbers like 3.14 and 2,718 and dates like 2024-01-01 appear in text.",
] * 20


def build_tiny_causal_lm(out: Path, *, seed: int = 0) -> Path:
    """A 2-layer Llama with a 512-token byte-level BPE tokenizer and a ChatML template."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    special = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=512, special_tokens=special, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(CORPUS, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        unk_token="<|endoftext|>",
        pad_token="<|endoftext|>",
    )
    fast.chat_template = CHATML_TEMPLATE
    config = LlamaConfig(
        vocab_size=len(fast),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        bos_token_id=fast.bos_token_id,
        eos_token_id=fast.eos_token_id,
        pad_token_id=fast.pad_token_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = fast.pad_token_id
    model.save_pretrained(out, safe_serialization=True)
    fast.save_pretrained(out)
    return out


def build_tiny_sentence_transformer(
    out: Path, *, seed: int = 0, hidden: int = 32, layers: int = 2, vocab_size: int = 1000
) -> Path:
    """A small BERT (WordPiece over ``CORPUS``'s words), mean pooling and normalisation, as a sentence-transformer.

    The vocabulary is built, not trained: ``tokenizers``' WordPiece trainer breaks ties by hash order, so each process
    got another vocabulary (324 or 325 tokens), hence another ``vocab_size`` and other random weights, and tests on
    exact values flaked. ``vocab_size`` truncates the vocabulary (specials, characters, ``##`` characters, words).
    The tokenizer wraps the ``tokenizers`` object itself: under transformers 5, ``BertTokenizerFast(vocab_file=)``
    reloads with only its special tokens, and every text would embed the same.
    """
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer
    from tokenizers import BertWordPieceTokenizer
    from tokenizers.normalizers import BertNormalizer
    from tokenizers.pre_tokenizers import BertPreTokenizer
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    normalizer, pre_tokenizer = BertNormalizer(lowercase=True), BertPreTokenizer()
    words = sorted({w for text in CORPUS for w, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(text))})
    chars = sorted({c for word in words for c in word})
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *chars, *(f"##{c}" for c in chars), *words]
    vocab = {token: i for i, token in enumerate(dict.fromkeys(tokens)) if i < vocab_size}
    wordpiece = BertWordPieceTokenizer(vocab, lowercase=True)  # given a vocabulary, it adds [CLS] text [SEP] itself
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


def widen_tiny_llm(tiny_dir: Path, out: Path, *, hidden: int = 64, seed: int = 1) -> Path:
    """The tiny Llama with a wider hidden size (same tokenizer), so every weight row fills 4-bit blocks of 64."""
    import torch
    from transformers import AutoConfig, AutoTokenizer, LlamaForCausalLM

    config = AutoConfig.from_pretrained(tiny_dir)
    config.hidden_size = hidden
    config.intermediate_size = 2 * hidden
    config.head_dim = hidden // config.num_attention_heads
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = config.pad_token_id
    model.save_pretrained(out, safe_serialization=True)
    AutoTokenizer.from_pretrained(tiny_dir).save_pretrained(out)
    return out
