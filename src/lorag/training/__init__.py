"""Trainers: adapters (QLoRA, IA3, prompt/prefix tuning, bottleneck) or full fine-tunes for the LLM wrappers,
optionally distilled from a teacher, and distilled embedders for the retrievers."""
