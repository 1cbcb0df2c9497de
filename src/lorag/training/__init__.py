"""Trainers: QLoRA adapters for the LLM wrappers and distilled embedders for the retrievers."""
