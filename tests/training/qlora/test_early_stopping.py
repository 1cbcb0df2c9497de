"""Early stopping ends the run when the eval loss stops improving."""

from __future__ import annotations

from pathlib import Path

from lorag.training.qlora import QLoRAConfig, train_adapter


def test_flat_eval_loss_stops_the_run(tiny_llm_dir: Path, echo_jsonl: Path, tmp_path: Path) -> None:
    # A learning rate this small leaves the eval loss bit-identical, so the second evaluation is no improvement.
    config = QLoRAConfig(
        quantization="none",
        learning_rate=1e-12,
        max_steps=20,
        eval_steps=2,
        eval_fraction=0.25,
        early_stopping_patience=1,
        batch_size=8,
    )
    result = train_adapter(tiny_llm_dir, echo_jsonl, tmp_path / "adapter", config, show_progress=False)
    assert result.metadata["stopped_early"] is True
    assert result.steps == 4
    evals = [row["eval_loss"] for row in result.metadata["log_history"] if "eval_loss" in row]
    assert evals[0] == evals[1]
