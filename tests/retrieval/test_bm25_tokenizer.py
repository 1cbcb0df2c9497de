"""The default tokenizer: lowercase, regex words, stopwords, Snowball stemming; English default, Spanish available."""

from __future__ import annotations

import pytest

from lorag.retrieval import BM25Index, Tokenizer


def test_english_default_lowercases_drops_stopwords_and_stems() -> None:
    assert Tokenizer().tokenize("The Running foxes are JUMPING over a fence!") == ["run", "fox", "jump", "over", "fenc"]


def test_spanish_uses_its_own_stopwords_and_stemmer() -> None:
    tokens = Tokenizer("spanish").tokenize("Los niños corrían por las calles de la ciudad")
    assert "los" not in tokens and "las" not in tokens and "de" not in tokens
    assert "corr" in tokens and "call" in tokens


def test_options_can_be_switched_off() -> None:
    tok = Tokenizer(lowercase=False, stopwords=False, stem=False)
    assert tok.tokenize("The Foxes") == ["The", "Foxes"]


def test_unknown_language_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="choose one of"):
        Tokenizer("klingon")


def test_stemming_makes_inflections_match() -> None:
    index = BM25Index.from_texts(["she runs every day", "cats sleep all day"], ids=["a", "b"])
    assert [h.id for h in index.search("running")] == ["a"]


def test_settings_round_trip() -> None:
    tok = Tokenizer("spanish", stopwords=["foo"], stem=False)
    again = Tokenizer.from_settings(tok.settings())
    assert again.settings() == tok.settings()
    assert again.tokenize("Foo corriendo") == tok.tokenize("Foo corriendo") == ["corriendo"]
