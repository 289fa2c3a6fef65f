"""The study's training jobs, run side by side: one worker process per GPU, or Slurm via submitit.

The networks a profile trains (one per style for Figs. 5–7 and Table 1; ×4/×8 super-resolution
with ℓ_pixel and ℓ_feat; SRCNN) are independent, so ``perceptual reproduce --gpus 0,1,2,3`` trains
them concurrently, then evaluates and builds the book as a plain ``reproduce`` would (every model
is then found, nothing is trained again).

Guarantees:
- a job whose ``model.pt`` exists is skipped; a job is taken from one queue by one worker, and
  trained under an exclusive lock on its run folder (``.lock``), so no model is trained twice,
  even by two ``reproduce`` commands on one results folder;
- a job that fails (an exception, or its worker dying) is reported by name, the others finish,
  and the command exits non-zero without evaluating; rerunning it resumes every unfinished job
  from its ``checkpoint.pt`` (:func:`perceptual.method.train.fit` resumes);
- on Slurm (``--slurm``) each job is one submitit job with one GPU; on preemption or timeout
  submitit requeues the same callable (:meth:`SlurmTask.checkpoint`), which resumes from the
  checkpoint. The evaluation and the book then run where the command was started.
"""
from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

from perceptual.runtime.runfolder import DeadlineReached
from perceptual.study.profiles import Profile

log = logging.getLogger("perceptual.study.jobs")


@dataclass(frozen=True)
class Job:
    """One network to train: a stable name (``style-la_muse``, ``sr-x4-feat``) and its run folder."""

    name: str
    kind: str  # a key of TRAINERS
    args: tuple  # the trainer's arguments after the context
    run_dir: Path
    profile: Profile = field(repr=False)
    root: Path = field(repr=False)  # the data root the parent resolved (demo data materialised once)

    @property
    def model(self) -> Path:
        return self.run_dir / "model.pt"

    @property
    def done(self) -> bool:
        return self.model.is_file()


@dataclass(frozen=True)
class Outcome:
    name: str
    status: str  # "trained" | "skipped" | "failed" | "stopped" (at the command's deadline; resumes)
    detail: str = ""
    seconds: float = 0.0
    device: str = ""


def training_jobs(ctx) -> list[Job]:
    """Every network ``ctx.profile`` trains, in the order a serial run would train them."""
    from perceptual.study.chapters.context import sr_methods, sr_run_dir, style_run_dir

    p = ctx.profile
    jobs = [Job(f"style-{Path(s).stem}", "style", (s,), style_run_dir(ctx, s), p, ctx.root)
            for s in dict.fromkeys((p.style_file, *p.qualitative_styles))]
    jobs += [Job(f"sr-x{f}-{m}", "sr", (f, m), sr_run_dir(ctx, f, m), p, ctx.root)
             for f in p.sr_factors for m in sr_methods(f)]
    return jobs


def train(job: Job, device: str | None = None) -> None:
    """Train one job on ``device`` (None: the visible GPU, else the CPU); resumes a checkpoint."""
    from perceptual.study.chapters.context import Context, sr_model, style_model
    from perceptual.method.train import pick_device

    trainers = {"style": style_model, "sr": sr_model}
    ctx = Context(job.profile, pick_device(device), job.root)
    trainers[job.kind](ctx, *job.args, progress=False)


Runner = Callable[[Job, "str | None"], None]


@contextlib.contextmanager
def _exclusive(run_dir: Path) -> Iterator[None]:
    """An exclusive lock on ``run_dir/.lock`` (waits for another holder; released if a process dies)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # not POSIX: the queue alone keeps jobs apart within one command
        yield
        return
    with open(run_dir / ".lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def attempt(job: Job, device: str | None, runner: Runner = train, label: str = "") -> Outcome:
    """Run one job unless its model exists; any exception becomes a failed :class:`Outcome`."""
    start = time.monotonic()
    with _exclusive(job.run_dir):
        if job.done:
            return Outcome(job.name, "skipped", "model.pt exists", 0.0, label)
        error_file = job.run_dir / "job-error.txt"
        error_file.unlink(missing_ok=True)  # from an earlier attempt
        try:
            runner(job, device)
        except DeadlineReached as err:  # checkpointed: the same command resumes it
            return Outcome(job.name, "stopped", str(err).split("; ")[0], time.monotonic() - start, label)
        except Exception as err:  # noqa: BLE001 — reported by name; the other jobs go on
            error_file.write_text(traceback.format_exc())
            return Outcome(job.name, "failed", f"{type(err).__name__}: {err}", time.monotonic() - start, label)
    if not job.done:
        return Outcome(job.name, "failed", "finished without writing model.pt", time.monotonic() - start, label)
    return Outcome(job.name, "trained", "", time.monotonic() - start, label)


# ---------------------------------------------------------------------------------------------
# one worker process per GPU


def _worker(slot: str, tasks, conn, runner: Runner, device: str | None, loader_workers: int) -> None:
    os.environ["CUDA_VISIBLE_DEVICES"] = slot.split(".")[0]  # before anything initialises CUDA in this process
    os.environ["PERCEPTUAL_LOADER_WORKERS"] = str(loader_workers)  # the machine's cores shared among the jobs
    while (job := tasks.get()) is not None:
        conn.send(("start", job.name))  # a pipe write is synchronous: seen even if the worker dies next
        conn.send(("end", attempt(job, device, runner, label=f"GPU {slot}")))
    conn.close()


def slots(gpus: Sequence[str], per_gpu: int = 1) -> list[str]:
    """Worker names: ``0`` … per GPU, or ``0.0``, ``0.1`` … when ``per_gpu`` workers share each GPU."""
    return [g if per_gpu == 1 else f"{g}.{k}" for g in gpus for k in range(per_gpu)]


def run_local(jobs: Sequence[Job], gpus: Sequence[str], runner: Runner = train, device: str | None = None,
              say: Callable[[str], None] = print, per_gpu: int = 1) -> list[Outcome]:
    """Train ``jobs`` with ``per_gpu`` worker processes per entry of ``gpus`` (``CUDA_VISIBLE_DEVICES``),
    each taking the next job from one queue; returns one :class:`Outcome` per job. Several workers
    on one GPU fill it where one batch-4 step leaves it mostly idle; the CPU cores for data loading
    are divided among them."""
    import multiprocessing
    from multiprocessing.connection import wait

    outcomes = [Outcome(j.name, "skipped", "model.pt exists") for j in jobs if j.done]
    todo = [j for j in jobs if not j.done]
    if not todo:
        return outcomes
    mp = multiprocessing.get_context("spawn")  # a fresh interpreter: no inherited CUDA or thread state
    tasks = mp.Queue()
    for job in todo:
        tasks.put(job)
    workers = slots(gpus, per_gpu)
    for _ in workers:
        tasks.put(None)  # one stop sign per worker, after every job
    procs, readers = {}, {}
    cores = max(1, (os.cpu_count() or 1) // len(workers))
    for gpu in workers:
        reader, writer = mp.Pipe(duplex=False)
        procs[gpu] = mp.Process(target=_worker, args=(gpu, tasks, writer, runner, device, min(8, cores)),
                                name=f"perceptual-gpu{gpu}")
        procs[gpu].start()
        writer.close()  # the worker holds the only writer: its exit shows as EOF here
        readers[reader] = gpu
    running: dict[str, str] = {}  # gpu → job name
    pending = {j.name for j in todo}
    try:
        while readers:
            for reader in wait(list(readers)):
                gpu = readers[reader]
                try:
                    kind, payload = reader.recv()
                except EOFError:  # the worker exited; a job it held without reporting has failed
                    del readers[reader]
                    procs[gpu].join()
                    if gpu in running:
                        name = running.pop(gpu)
                        pending.discard(name)
                        outcomes.append(Outcome(name, "failed", f"its worker (GPU {gpu}) died with exit code "
                                                                f"{procs[gpu].exitcode}", device=f"GPU {gpu}"))
                        say(f"[GPU {gpu}] failed {name}: worker died")
                    continue
                if kind == "start":
                    running[gpu] = payload
                    say(f"[GPU {gpu}] training {payload}")
                else:
                    running.pop(gpu, None)
                    pending.discard(payload.name)
                    outcomes.append(payload)
                    say(f"[GPU {gpu}] {payload.status} {payload.name} ({payload.seconds:.0f} s)"
                        + (f": {payload.detail}" if payload.detail else ""))
    finally:
        for proc in procs.values():
            proc.join(timeout=5)
            if proc.is_alive():
                proc.terminate()
                proc.join()
    outcomes += [Outcome(n, "failed", "not run: every worker stopped") for n in sorted(pending)]
    return outcomes


# ---------------------------------------------------------------------------------------------
# Slurm through submitit


@dataclass(frozen=True)
class SlurmOptions:
    partition: str | None = None
    time_min: int = 24 * 60  # per submission; preempted or timed-out jobs are requeued
    gpus: int = 1  # per job (one network per job; more GPUs do not speed one run up)
    cpus: int = 8  # data-loading workers (chapters.loader_workers uses up to 8)
    cluster: str | None = None  # None: detect (slurm); "local": submitit's local executor (tests)


class SlurmTask:
    """A picklable submitit callable: trains one job. On preemption or timeout submitit calls
    :meth:`checkpoint`, which resubmits this same task; it resumes from ``checkpoint.pt``."""

    def __init__(self, job: Job, runner: Runner = train, device: str | None = None):
        self.job, self.runner, self.device = job, runner, device

    def __call__(self) -> Outcome:
        return attempt(self.job, self.device, self.runner, label=f"slurm {os.environ.get('SLURM_JOB_ID', 'local')}")

    def checkpoint(self, *args, **kwargs):
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(self, *args, **kwargs)  # training state lives in the run folder


def run_slurm(jobs: Sequence[Job], folder: Path, options: SlurmOptions = SlurmOptions(), runner: Runner = train,
              device: str | None = None, say: Callable[[str], None] = print) -> list[Outcome]:
    """Submit every unfinished job through submitit, wait for all, return their outcomes."""
    try:
        import submitit
    except ImportError:
        raise RuntimeError("--slurm needs submitit: pip install -e '.[gpu-box]'") from None

    outcomes = [Outcome(j.name, "skipped", "model.pt exists") for j in jobs if j.done]
    executor = submitit.AutoExecutor(folder=folder / "%j", cluster=options.cluster)
    executor.update_parameters(timeout_min=options.time_min, gpus_per_node=options.gpus,
                               cpus_per_task=options.cpus, tasks_per_node=1, nodes=1,
                               **({"slurm_partition": options.partition} if options.partition else {}))
    submitted = []
    for job in (j for j in jobs if not j.done):
        executor.update_parameters(name=f"perceptual-{job.name}")
        submitted.append((job, executor.submit(SlurmTask(job, runner, device))))
        say(f"[slurm] submitted {job.name} as job {submitted[-1][1].job_id}")
    for job, handle in submitted:
        try:
            outcome = handle.result()
        except Exception as err:  # noqa: BLE001 — a job killed, cancelled or out of requeues
            outcome = Outcome(job.name, "failed", f"{type(err).__name__}: {str(err).strip().splitlines()[0]}")
        outcomes.append(outcome)
        say(f"[slurm] {outcome.status} {outcome.name}" + (f": {outcome.detail}" if outcome.detail else ""))
    return outcomes


# ---------------------------------------------------------------------------------------------
# reproduce: train in parallel, then evaluate and build the book


def parse_gpus(text: str) -> list[str]:
    """``"0,1,2,3"`` → ["0", "1", "2", "3"]; ValueError naming --gpus otherwise."""
    gpus = [g.strip() for g in text.split(",") if g.strip()]
    if not gpus or any(not g.isdigit() for g in gpus) or len(set(gpus)) != len(gpus):
        raise ValueError(f"--gpus {text!r}: give distinct GPU indices separated by commas, e.g. --gpus 0,1,2,3")
    return gpus


def reproduce(profile: str | None = None, gpus: Sequence[str] = (), slurm: SlurmOptions | None = None,
              only: str | None = None, build: bool = True, device: str | None = None,
              runner: Runner = train, then: Callable[..., int] | None = None, per_gpu: int = 1) -> int:
    """Train the profile's jobs on ``gpus`` (``per_gpu`` workers each; or Slurm), then
    ``then(name, only=, build_book=, device=)`` (the command line passes
    :func:`perceptual.book.site.reproduce`). Returns an exit code: 1 naming the failed jobs (nothing
    evaluated), 75 when the command's deadline stopped some (checkpointed; the same command resumes),
    else ``then``'s (0 without one)."""
    from perceptual.study import profiles
    from perceptual.study.chapters.context import Context
    from perceptual.core import paths

    name, why = profiles.choose(profile)
    ctx = Context.create(profiles.get(name), device)
    jobs = training_jobs(ctx)
    for rel in dict.fromkeys((*ctx.profile.train_dirs, *(j.args[0] for j in jobs if j.kind == "style"))):
        ctx.data(rel)  # DataMissing here, once, rather than in every worker
    where = f"Slurm ({slurm.cluster or 'detected'})" if slurm else f"GPUs {','.join(gpus)}" + (
        f", {per_gpu} jobs at a time on each" if per_gpu > 1 else "")
    print(f"profile: {name} ({why}); {len(jobs)} training jobs on {where}: {', '.join(j.name for j in jobs)}",
          flush=True)
    if slurm:
        outcomes = run_slurm(jobs, paths.results_dir() / name / "slurm", slurm, runner, device)
    else:
        outcomes = run_local(jobs, gpus, runner, device, per_gpu=per_gpu)
    failed = [o for o in outcomes if o.status == "failed"]
    for o in failed:
        print(f"error: training job {o.name} failed: {o.detail} (log: {_run_dir(jobs, o.name)})", file=sys.stderr)
    if failed:
        print(f"error: {len(failed)} of {len(jobs)} training jobs failed ({', '.join(o.name for o in failed)}); "
              "the others are trained. Run the same command again to resume them; nothing was evaluated.",
              file=sys.stderr)
        return 1
    stopped = [o.name for o in outcomes if o.status == "stopped"]
    if stopped:
        print(f"deadline reached: {len(stopped)} of {len(jobs)} training jobs checkpointed ({', '.join(stopped)}); "
              "run the same command again to resume them; nothing was evaluated.", file=sys.stderr)
        return 75
    return then(name, only=only, build_book=build, device=device) if then else 0


def _run_dir(jobs: Sequence[Job], name: str) -> Path | str:
    return next((j.run_dir for j in jobs if j.name == name), "?")
