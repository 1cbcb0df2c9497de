"""The training progress bar: one tqdm bar over optimizer steps with the latest train and eval loss."""

from __future__ import annotations

from typing import Any


def progress_callback() -> Any:
    """A ``TrainerCallback`` drawing the bar (built here so transformers is imported only when training)."""
    from tqdm.auto import tqdm
    from transformers import TrainerCallback

    class LossProgressCallback(TrainerCallback):  # type: ignore[misc]
        def __init__(self) -> None:
            self.bar: Any = None
            self.postfix: dict[str, str] = {}

        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if not state.is_world_process_zero:  # under accelerate launch one bar, not one per process
                return
            self.bar = tqdm(total=state.max_steps, initial=state.global_step, desc="training adapter", unit="step")

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if self.bar is not None:
                self.bar.update(state.global_step - self.bar.n)

        def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kw: Any) -> None:
            if self.bar is None or not logs:
                return
            for key in ("loss", "eval_loss"):
                if key in logs:
                    self.postfix[key] = f"{logs[key]:.4f}"
            self.bar.set_postfix(self.postfix, refresh=True)

        def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if self.bar is not None:
                self.bar.close()
                self.bar = None

    return LossProgressCallback()
