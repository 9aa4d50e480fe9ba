"""A per-trial memory limit that is really enforced, so an out-of-memory trial fails the way
it would on a small card, frees everything and lets the search go on.

- CUDA: the device's own mechanism, torch.cuda.set_per_process_memory_fraction: the caching
  allocator refuses to grow past the limit and raises torch.OutOfMemoryError. A big GPU
  stands in for the guide's 8 GB card.
- CPU: the trial trains in a child process (spawned, so it shares no threads or locks with
  the Ray worker) whose data segment is capped with RLIMIT_DATA at its size after start-up
  plus the limit. An allocation past it fails inside torch ("can't allocate memory"); the
  child reports `oom` and exits, and the operating system takes back every byte, so nothing
  leaks into the next trial of a reused worker. The cap applies to the child alone: Ray's
  own threads in the worker never see a failed allocation.

The child streams each evaluation to the parent, which reports it to Ray (with the
checkpoint the child wrote) and answers whether to go on.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any, Callable

OOM_MARKERS = ("can't allocate memory", "cannot allocate memory", "out of memory",
               "not enough memory")


class MemoryLimitExceeded(Exception):
    """Training ran past the trial's memory limit."""

    def __init__(self, message: str, peak_bytes: float):
        super().__init__(message)
        self.peak_bytes = peak_bytes


def is_oom(e: BaseException) -> bool:
    import torch

    if isinstance(e, (MemoryError, torch.OutOfMemoryError, MemoryLimitExceeded)):
        return True
    return isinstance(e, RuntimeError) and any(m in str(e).lower() for m in OOM_MARKERS)


def vm_data_bytes() -> int:
    """This process's data segment (what RLIMIT_DATA limits), from /proc."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmData:"):
                return int(line.split()[1]) * 1024
    return 0


def set_cuda_limit(limit_bytes: int | None) -> None:
    """Cap (or, with None, uncap) the caching allocator at limit_bytes of device 0."""
    import torch

    total = torch.cuda.get_device_properties(0).total_memory
    fraction = 1.0 if not limit_bytes else min(1.0, limit_bytes / total)
    torch.cuda.set_per_process_memory_fraction(fraction)


def train_in_child(cfg_dict: dict[str, Any], *, data_path: str, limit_bytes: int,
                   threads: int, resume: dict | None, ckpt_path: str | None,
                   on_eval: Callable[[dict[str, Any]], bool], reads: Any = None
                   ) -> dict[str, Any]:
    """Run tune_gpt.train.train in a spawned child capped at limit_bytes of data.

    At every evaluation the child writes its checkpoint to ckpt_path (when given), then
    on_eval(record_dict) is called in this process; it returns True to stop. Returns the
    child's summary; raises MemoryLimitExceeded when the child ran out of memory and
    RuntimeError for any other failure (or a child that died). `reads` (a WSD trial's
    tune_gpt.rung_read.RungReads, picklable) goes to the child's train()."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    with tempfile.TemporaryDirectory(prefix="tg-trial-") as tmp:
        resume_path = None
        if resume is not None:
            import torch

            resume_path = os.path.join(tmp, "resume.pt")
            torch.save(resume, resume_path)
        proc = ctx.Process(target=_child_main, daemon=True,
                           args=(child, cfg_dict, data_path, limit_bytes, threads, resume_path,
                                 ckpt_path, reads))
        proc.start()
        child.close()
        try:
            while True:
                try:
                    kind, *payload = parent.recv()
                except EOFError:
                    proc.join(timeout=5)
                    raise RuntimeError(f"training process died (exit code {proc.exitcode})") \
                        from None
                if kind == "eval":
                    parent.send(bool(on_eval(payload[0])))
                elif kind == "done":
                    return payload[0]
                elif kind == "oom":
                    raise MemoryLimitExceeded(payload[0], payload[1])
                else:
                    raise RuntimeError(payload[0])
        finally:
            if proc.is_alive():
                proc.kill()
            proc.join()


def _child_main(conn: Any, cfg_dict: dict[str, Any], data_path: str, limit_bytes: int,
                threads: int, resume_path: str | None, ckpt_path: str | None,
                reads: Any = None) -> None:
    """The spawned child: import, cap the data segment, train, stream evaluations."""
    import resource as res

    try:
        import torch

        from tune_gpt.config import from_mapping
        from tune_gpt.data import prepare
        from tune_gpt.train import train

        cfg = from_mapping(cfg_dict)
        data = prepare(data_path)
        resume = torch.load(resume_path, weights_only=True) if resume_path else False
        baseline = vm_data_bytes()
        _, hard = res.getrlimit(res.RLIMIT_DATA)
        soft = baseline + limit_bytes
        res.setrlimit(res.RLIMIT_DATA, (soft if hard == res.RLIM_INFINITY else min(soft, hard),
                                        hard))
        def on_eval(record: Any, ckpt: Any) -> bool:
            if ckpt_path:
                ckpt.save_trial(ckpt_path, record.model_val_loss)
            conn.send(("eval", {**record.to_dict(), "limit_baseline_bytes": baseline}))
            return conn.recv()

        result = train(cfg, on_eval=on_eval, resume=resume, threads=threads, data=data,
                       reads=reads)
        conn.send(("done", {"diverged": result.diverged, "iters": result.iters}))
    except BaseException as e:  # noqa: BLE001 — everything goes back to the parent
        peak = res.getrusage(res.RUSAGE_SELF).ru_maxrss * 1024
        text = f"{type(e).__name__}: {e}".splitlines()[0][:500]
        try:
            is_mem = isinstance(e, MemoryError) or any(m in text.lower() for m in OOM_MARKERS)
            conn.send(("oom" if is_mem else "error", text, float(peak)))
        except Exception:  # noqa: BLE001 — the pipe may be gone; the parent sees EOF
            pass
    finally:
        conn.close()
