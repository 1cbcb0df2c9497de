"""Training losses in the sentence-transformers style: each an ``nn.Module(model, ...)`` over embeddings."""

from lorag.losses.distillation import EmbeddingDistillationLoss

__all__ = ["EmbeddingDistillationLoss"]
