"""No network unless asked: with ``HF_HUB_OFFLINE`` unset, importing lorag and running its commands open no socket.

Each case runs in a fresh interpreter whose socket functions record the attempt (with its stack) and fail loudly,
so an attempt that the caller swallows still shows up. Argument and path errors come before the heavy imports.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("torch", "transformers", "sentence_transformers", "peft", "bitsandbytes")

# Runs first in the child: every way to reach a host records itself in $NETWORK_LOG and raises.
PRELUDE = """
import json, os, socket, sys, traceback
def _deny(name):
    def attempt(*args, **kwargs):
        with open(os.environ["NETWORK_LOG"], "a") as log:
            log.write(json.dumps({"call": name, "args": repr(args[:2]), "stack": traceback.format_stack()}) + "\\n")
        raise OSError(f"test_no_network: {name} called")
    return attempt
for _name in ("getaddrinfo", "gethostbyname", "gethostbyname_ex", "create_connection"):
    setattr(socket, _name, _deny(_name))
socket.socket.connect = _deny("socket.connect")
socket.socket.connect_ex = _deny("socket.connect_ex")
"""

CLI = """
import sys
sys.argv = ["lorag", *sys.argv[1:]]
from lorag.cli import main
try:
    main()
finally:
    # A lazily imported module (bitsandbytes, until first used) is listed but has not run.
    ran = [m for m in {heavy!r} if m in sys.modules and type(sys.modules[m]).__name__ != "_LazyModule"]
    print("HEAVY=" + ",".join(ran), file=sys.stderr)
"""


def _run(tmp_path: Path, code: str, *args: str) -> tuple[subprocess.CompletedProcess[str], list[dict]]:
    log = tmp_path / "network.jsonl"
    log.unlink(missing_ok=True)
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    env.update(NETWORK_LOG=str(log), OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    done = subprocess.run(
        [sys.executable, "-c", PRELUDE + code, *args],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    attempts = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return done, attempts


def _no_attempt(attempts: list[dict]) -> None:
    assert not attempts, "network attempts:\n" + "\n".join(a["call"] + "".join(a["stack"][-12:]) for a in attempts)


def _heavy(done: subprocess.CompletedProcess[str]) -> list[str]:
    line = next(line for line in done.stderr.splitlines() if line.startswith("HEAVY="))
    return [m for m in line.removeprefix("HEAVY=").split(",") if m]


@pytest.fixture
def tiny_docs(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "notes.md").write_text("# Notes\n\nThe server listens on port 8000.\n\nCORS is allowed for example.org.")
    return folder


def test_importing_lorag_and_its_integrations_opens_no_socket(tmp_path: Path) -> None:
    code = (
        "import lorag, lorag.chunking, lorag.rag.loaders, lorag.retrieval, lorag.embedding, lorag.llm, lorag.cli\n"
        "import langchain_lorag, llama_index.retrievers.lorag\n"
        "import peft\n"  # imports bitsandbytes: lazily now, and offline when it runs
        "import bitsandbytes; bitsandbytes.nn\n"
    )
    done, attempts = _run(tmp_path, code)
    assert done.returncode == 0, done.stderr
    _no_attempt(attempts)
    assert "kernels-community" not in done.stderr


def test_lorag_index_of_a_tiny_folder_opens_no_socket(tmp_path: Path, tiny_docs: Path, tiny_st_dir: Path) -> None:
    index = tmp_path / "index"
    args = ["index", "--docs", str(tiny_docs), "--index-dir", str(index), "--embedder", str(tiny_st_dir)]
    done, attempts = _run(tmp_path, CLI.format(heavy=HEAVY), *args)
    assert done.returncode == 0, done.stderr
    _no_attempt(attempts)
    assert "bitsandbytes" not in _heavy(done), "imported although no quantized model was loaded"
    output = [line for line in done.stderr.splitlines() if not line.startswith("HEAVY=")]
    assert output == [line for line in output if line.startswith("index ")], "only lorag's own report line"


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["ask", "--help"],
        ["export-adapter", "--help"],
        ["ask"],  # the question is missing
        ["ask", "what?", "--docs", "no-such-folder"],
        ["ask", "what?", "--docs", ".", "--adapter", "no-such-adapter"],
        ["ask", "what?", "--k", "zero"],
        ["no-such-command"],
    ],
)
def test_help_and_argument_errors_come_before_heavy_imports(tmp_path: Path, args: list[str]) -> None:
    done, attempts = _run(tmp_path, CLI.format(heavy=HEAVY), *args)
    _no_attempt(attempts)
    assert done.returncode == (0 if "--help" in args else 2), done.stderr
    assert _heavy(done) == []
    if done.returncode:
        assert "Traceback" not in done.stderr


def test_the_lazy_command_list_shows_each_command_s_own_help() -> None:
    import importlib

    from lorag.cli import COMMANDS, app

    for name, (module, short_help) in COMMANDS.items():
        importlib.import_module(module)
        (info,) = [c for c in app.registered_commands if c.name == name and c.callback.__module__ == module]
        assert (info.callback.__doc__ or "").strip().splitlines()[0] == short_help, name


def test_the_test_suite_imports_lorag_before_a_test_module_imports_sentence_transformers(tmp_path: Path) -> None:
    """tests/conftest.py imports lorag first: a module importing sentence-transformers (hence bitsandbytes) at its
    top, as isort orders it, once made bitsandbytes look up a CPU kernel on the hub while pytest collected it."""
    root = Path(__file__).resolve().parents[2]
    shutil.copy(root / "tests" / "conftest.py", tmp_path / "conftest.py")
    module = tmp_path / "test_imports_first.py"
    module.write_text("import sentence_transformers  # noqa: F401\n\nimport lorag  # noqa: F401\n")
    args = ["--co", "-p", "no:cacheprovider", "-c", str(root / "pyproject.toml"), "--rootdir", str(tmp_path)]
    args += ["-o", "log_cli=true", "-o", "log_cli_level=DEBUG", str(module)]
    done, attempts = _run(tmp_path, f"import sys, pytest\nsys.exit(pytest.main({args!r}))")
    assert done.returncode == 5 and "no tests collected" in done.stdout, done.stdout + done.stderr
    _no_attempt(attempts)
    assert "kernels-community" not in done.stdout + done.stderr
