"""``LoragEmbeddings``: LangChain embeddings over any sentence-transformers model, through lorag's ``Embedder``.

Its fields come from ``lorag.embedding.options``, where the LlamaIndex ``LoragEmbedding`` takes them too.
"""

from __future__ import annotations

from langchain_core.embeddings import Embeddings
from pydantic import ConfigDict

from lorag.embedding.options import options_model

_Options = options_model()


class LoragEmbeddings(_Options, Embeddings):  # type: ignore[misc,valid-type]
    """Embeddings from a lorag model reference: a teacher (``minilm``, ``mpnet``), a distilled student directory
    (``lorag distill``), or any sentence-transformers model.

    Takes the ``Embedder`` options (``lorag.embedding.options.EmbedderOptions``): ``model``, ``device``,
    ``batch_size``, ``normalize``, the prompts, ``precision``, ``backend``, ``cache_path`` and the rest; ``embedder``
    is the core ``lorag.embedding.Embedder`` built from them.

    Example:
        .. code-block:: python

            from langchain_lorag import LoragEmbeddings

            embeddings = LoragEmbeddings(model="minilm", backend="onnx")
            vector = embeddings.embed_query("What is dense retrieval?")
    """

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.float_lists(self.embedder.embed_documents(texts))

    def embed_query(self, text: str) -> list[float]:
        return self.float_lists(self.embedder.embed_queries([text]))[0]
