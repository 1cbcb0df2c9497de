"""Training losses in the sentence-transformers style: each an ``nn.Module`` whose ``forward`` delegates to a method
that works from embeddings or logits."""

from lorag.losses.distillation import EmbeddingDistillationLoss
from lorag.losses.llm_distillation import LLMDistillationLoss

__all__ = ["EmbeddingDistillationLoss", "LLMDistillationLoss"]
