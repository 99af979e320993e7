"""Pack a checkpoint small enough to travel to a GPU machine and back.

The device tool moves at most 64 MiB with a call and returns files of at most
16 MiB, while a MiniLM checkpoint is 90 MB in fp32. Packing halves it in fp16
(the trip back, where the weights are the product) or quarters it in per-row
int8 (the trip out, where the run's first steps absorb the rounding; one scale
per row, so no row loses precision to another row's outlier), and splits the
bytes into numbered chunks whose hashes unpacking checks.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from pathlib import Path
from typing import Literal, cast

import numpy as np
import numpy.typing as npt

from worker.errors import ModelError

__all__ = ["pack", "unpack"]

Precision = Literal["fp16", "int8"]
INDEX_FILE = "carry.json"
WEIGHTS_FILE = "model.safetensors"
SIDE_FILES = ("config.json", "tokenizer.json")
MiB = 1 << 20


def require_new_folder(out: Path, verb: str) -> None:
    """Refuse to write a checkpoint over a file or over a folder that holds files."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ModelError(f"{out} is a file or a folder that is not empty; {verb} into a new folder")


def _int8_rows(tensor: npt.NDArray[np.float32]) -> tuple[bytes, bytes]:
    """Symmetric int8 per row: the values, then one fp32 scale per row."""
    rows = tensor.reshape(tensor.shape[0], -1)
    scales = np.abs(rows).max(axis=1) / 127.0
    scales[scales == 0] = 1.0
    values = np.clip(np.rint(rows / scales[:, None]), -127, 127).astype(np.int8)
    return values.tobytes(), scales.astype(np.float32).tobytes()


def pack(checkpoint: Path, out: Path, precision: Precision, chunk_mib: int = 15) -> int:
    """Write ``checkpoint`` to ``out`` as chunks; returns the bytes written."""
    from safetensors.numpy import load_file

    weights = checkpoint / WEIGHTS_FILE
    if not weights.is_file():
        raise ModelError(f"no {WEIGHTS_FILE} in checkpoint {checkpoint}")
    if precision not in ("fp16", "int8"):
        raise ModelError(f"unknown precision {precision!r}: fp16 or int8")
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    blob = bytearray()
    tensors = {}
    for name, tensor in sorted(load_file(str(weights)).items()):
        entry: dict[str, object] = {"shape": list(tensor.shape), "offset": len(blob)}
        if precision == "int8" and tensor.ndim == 2:
            values, scales = _int8_rows(tensor.astype(np.float32))
            entry |= {"encoding": "int8-rows", "scales_offset": len(blob) + len(values)}
            blob += values + scales
        else:
            entry["encoding"] = "fp16"
            blob += tensor.astype(np.float16).tobytes()
        tensors[name] = entry
    chunks = []
    size = chunk_mib * MiB
    for number, start in enumerate(range(0, len(blob), size)):
        part = bytes(blob[start : start + size])
        name = f"weights.{number:02d}.bin"
        (out / name).write_bytes(part)
        chunks.append({"file": name, "sha256": hashlib.sha256(part).hexdigest()})
    for side in SIDE_FILES:
        if (checkpoint / side).is_file():
            shutil.copyfile(checkpoint / side, out / side)
    index = {"precision": precision, "tensors": tensors, "chunks": chunks}
    (out / INDEX_FILE).write_text(json.dumps(index, indent=1))
    return len(blob)


def _read_chunks(packed: Path, chunks: list[dict[str, str]]) -> bytes:
    blob = bytearray()
    for chunk in chunks:
        path = packed / chunk["file"]
        if not path.is_file():
            raise ModelError(f"packed checkpoint {packed} is missing {chunk['file']}")
        part = path.read_bytes()
        if hashlib.sha256(part).hexdigest() != chunk["sha256"]:
            raise ModelError(f"{path} does not match its hash: copied incompletely?")
        blob += part
    return bytes(blob)


def unpack(packed: Path, out: Path) -> None:
    """Rebuild an fp32 checkpoint folder that ``load_torch_classifier`` reads."""
    from safetensors.numpy import save_file

    try:
        index = json.loads((packed / INDEX_FILE).read_text())
        blob = _read_chunks(packed, index["chunks"])
        restored = {}
        for name, entry in index["tensors"].items():
            shape = tuple(entry["shape"])
            count = int(np.prod(shape))
            if entry["encoding"] == "int8-rows":
                values = np.frombuffer(blob, np.int8, count, entry["offset"])
                scales = np.frombuffer(blob, np.float32, shape[0], entry["scales_offset"])
                tensor = values.reshape(shape[0], -1).astype(np.float32) * scales[:, None]
            else:
                tensor = np.frombuffer(blob, np.float16, count, entry["offset"]).astype(np.float32)
            restored[name] = np.ascontiguousarray(tensor.reshape(shape))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"cannot unpack {packed}: {exc}") from exc
    out.mkdir(parents=True, exist_ok=True)
    save_file(restored, str(out / WEIGHTS_FILE), metadata={"format": "pt"})
    for side in SIDE_FILES:
        if (packed / side).is_file():
            shutil.copyfile(packed / side, out / side)


def main(argv: list[str]) -> None:
    """``python -m worker.model.carry pack CHECKPOINT OUT fp16|int8`` or ``unpack PACKED OUT``."""
    try:
        if len(argv) == 4 and argv[0] == "pack":
            written = pack(Path(argv[1]), Path(argv[2]), cast(Precision, argv[3]))
            print(json.dumps({"event": "packed", "bytes": written, "out": argv[2]}))
        elif len(argv) == 3 and argv[0] == "unpack":
            unpack(Path(argv[1]), Path(argv[2]))
            print(json.dumps({"event": "unpacked", "out": argv[2]}))
        else:
            raise SystemExit(main.__doc__)
    except ModelError as exc:
        raise SystemExit(f"error: {exc}") from exc


if __name__ == "__main__":
    main(sys.argv[1:])
