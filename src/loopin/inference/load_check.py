"""Try a user's ONNX model in a child process bounded in time and memory before the server
loads it.

onnxruntime builds a session in native code that neither a timeout nor SIGTERM interrupts,
and a model can ask for any amount of memory while it is built or first run (a constant of
billions of elements is a few bytes in the file). So the child loads the model and runs it
once on a blank image, exactly as ``Detector.from_onnx`` does in the server, under an
address-space limit; the parent waits at most the time limit and kills it after. Only a
model that passed is then loaded by the server itself.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

from loopin.errors import LoopinError, ValidationError
from loopin.inference.spec import ModelSpec

_REFUSED, _OUT_OF_MEMORY = 2, 3  # the child's exit codes besides 0 (loaded) and crashes


def check_model_loads(data: bytes, spec: ModelSpec, *, timeout_s: float, memory_bytes: int) -> None:
    """Raise ValidationError, with a reason a person can act on, unless the model loads and
    runs once within ``timeout_s`` seconds and ``memory_bytes`` of memory beyond what the
    runtime itself takes."""
    with tempfile.TemporaryDirectory(prefix="loopin-model-check-") as folder:
        # An empty private folder: external-data references cannot reach anything else.
        Path(folder, "model.onnx").write_bytes(data)
        Path(folder, "spec.json").write_text(spec.model_dump_json())
        try:
            done = subprocess.run(
                [sys.executable, "-m", "loopin.inference.load_check", folder, str(memory_bytes)],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=timeout_s,  # the child is killed when it runs out
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise ValidationError(
                f"The model did not load and run once within {timeout_s:g} s (setting model_load_timeout_seconds)."
            ) from None
    reason = (done.stderr.strip().splitlines() or [""])[-1][:500]
    if done.returncode == 0:
        return
    if done.returncode == _REFUSED:
        raise ValidationError(reason)
    if done.returncode == _OUT_OF_MEMORY or done.returncode < 0:
        raise ValidationError(
            f"The model needs more than {memory_bytes:,} bytes of memory to load and run once "
            f"(setting model_load_memory_bytes){f': {reason}' if reason else ''}."
        )
    raise ValidationError(f"The model could not be loaded: {reason or f'exit code {done.returncode}'}.")


def _address_space_bytes() -> int | None:
    """This process's virtual memory size now, where the system tells it (Linux)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _child(folder: Path, memory_bytes: int) -> int:
    from loopin.inference.detector import Detector  # onnxruntime and numpy, before the limit

    spec = ModelSpec.model_validate_json((folder / "spec.json").read_text())
    base = _address_space_bytes()
    if base is not None:
        limit = base + memory_bytes
        resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))
    try:
        Detector.from_onnx(folder / "model.onnx", spec, name="check")
    except MemoryError:
        return _OUT_OF_MEMORY
    except LoopinError as exc:
        print(exc.message, file=sys.stderr)
        return _OUT_OF_MEMORY if "alloc" in exc.message.lower() else _REFUSED
    except Exception as exc:  # onnxruntime's run errors share no base class
        print(str(exc).replace("\n", " "), file=sys.stderr)
        return _OUT_OF_MEMORY if "alloc" in str(exc).lower() else 1
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.exit(_child(Path(sys.argv[1]), int(sys.argv[2])))
