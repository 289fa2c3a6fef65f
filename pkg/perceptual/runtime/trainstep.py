"""One training step — forward, loss, backward and Adam — as :func:`perceptual.method.train.fit` and the
speed benchmark run it: :class:`EagerStep` (autocast, gradient scaler for fp16), or
:class:`GraphedStep`, captured once as a CUDA graph and replayed for every later batch: one launch
where eager training issues ≈ 1,250 kernels.

Why graphs: the paper's style step (256², batch 4) on an H100 is launch-bound — the GPU is busy
≈ 9 ms of a 12–16 ms step (session 3's profile), so iterations/s followed the lent machine's CPU
(62 / 78 / 60 it/s in three runs against issue 12's 70). A replayed graph runs the same kernels
with the host out of the loop: 107.5 / 108.1 / 108.1 it/s in three bench runs on an H100 (session
6, ``results/published/benchmarks``), the same losses as the eager step to the last bit (fp32,
deterministic cuDNN, 40 iterations). So training uses one wherever it can run (:func:`plan`).

What a graph asks of a step: it must be a function of its tensors alone. A step that reads a value
back to the host (``.item()``, printing a loss) cannot be captured: training then goes on eagerly,
with a warning, unless the graph was asked for explicitly. Python-side state is NOT detected: a
counter, a loss-weight schedule or Python random numbers in the step are frozen at their values at
capture and replayed so. Such a step needs ``cuda_graph=False`` (``--no-cuda-graph``).

Semantics are eager training's: the first ``warmup`` iterations run eagerly on a side stream (as
capture requires; cuDNN autotuning happens there), the next one is captured and then replayed,
and every later one copies its batch into the captured input and replays — so iteration i still
trains on batch i. The terms returned are the graph's own output tensors, overwritten by the next
call: read or copy them before it. Requirements, checked: a CUDA device, one batch shape, bf16
or fp32 (fp16's gradient scaler reads the gradients back on the host), and an Adam built with
``capturable=True`` (:func:`perceptual.runtime.precision.adam`).
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from perceptual.runtime import precision

Step = Callable[[nn.Module, torch.Tensor], dict[str, torch.Tensor]]


def _refusal(device: torch.device | str, prec: str) -> str | None:
    """Why a training step on ``device`` in ``prec`` cannot be captured (None: it can)."""
    if torch.device(device).type != "cuda":
        return f"CUDA graphs need a CUDA device, got {torch.device(device)}; train without --cuda-graph"
    if prec not in ("bf16", "fp32"):
        return f"CUDA graphs need precision bf16 or fp32 (fp16's gradient scaler syncs with the host), got {prec}"
    return None


def check(device: torch.device | str, prec: str) -> None:
    """Refuse, with the reason, where a training step cannot be captured."""
    if reason := _refusal(device, prec):
        raise ValueError(reason)


def plan(name: str, device: torch.device | str, cuda_graph: bool | None = None, compiled: bool = False
         ) -> tuple[str, bool]:
    """(precision, graph) of a training run: the config's precision resolved for ``device``
    (:func:`perceptual.runtime.precision.resolve`), and whether its step is replayed as a CUDA graph —
    ``None`` (auto): wherever one can run; ``True``: asked for, refused with the reason where it
    cannot; ``False``: eager. A ``compiled`` step (``torch.compile``) is never captured: the two are
    alternatives (on an H100 the graph is the faster, on a CPU only compiling applies)."""
    prec = precision.resolve(name, device)
    if compiled:
        if cuda_graph:
            raise ValueError("--compile and --cuda-graph are alternatives (a compiled step is not captured as a "
                             "CUDA graph); choose one")
        return prec, False
    if cuda_graph is None:
        return prec, _refusal(device, prec) is None
    if cuda_graph:
        check(device, prec)
    return prec, cuda_graph


def first_cause(err: BaseException) -> str:
    """The first line of the error that started ``err``'s chain: a capture broken by a host read
    raises again when it ends ("operation failed due to a previous error during capture")."""
    while err.__context__ is not None:
        err = err.__context__
    return (str(err).splitlines() or [type(err).__name__])[0]


def detached(terms: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The loss terms without their autograd graph: one kept alive past its step would tie the next
    step's gradients to the stream it was made on (a warm-up's side stream, seen on an H100)."""
    return {name: value.detach() for name, value in terms.items()}


class EagerStep:
    """``step(model, batch)`` under autocast for ``prec``, backward (scaled for fp16) and
    ``opt.step()``; returns the loss terms (detached)."""

    def __init__(self, model: nn.Module, step: Step, opt: torch.optim.Optimizer, device: torch.device | str,
                 prec: str):
        self.model, self.step, self.opt, self.device, self.prec = model, step, opt, torch.device(device), prec
        self.scaler = precision.scaler(self.device, prec)

    def __call__(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        with precision.autocast(self.device, self.prec):
            terms = self.step(self.model, batch)
        self.opt.zero_grad(set_to_none=True)
        self.scaler.scale(terms["total"]).backward()
        self.scaler.step(self.opt)
        self.scaler.update()
        return detached(terms)


def trainer(model: nn.Module, step: Step, opt: torch.optim.Optimizer, device: torch.device | str, prec: str,
            graph: bool = False, fallback: Callable[[str], None] | None = None) -> EagerStep | GraphedStep:
    """The training step for ``model``: replayed as a CUDA graph if ``graph``, else eager.
    ``fallback``: where the capture fails, called with the reason, and training goes on eagerly."""
    if graph:
        return GraphedStep(model, step, opt, device, prec, fallback=fallback)
    return EagerStep(model, step, opt, device, prec)


def fp16_scaler(step, state: dict | None = None):
    """fp16's gradient scaler of an eager ``step`` (None otherwise), with a checkpoint's ``state``
    loaded (its scale and growth count: resumed fp16 steps scale alike)."""
    scaler = step.scaler if isinstance(step, EagerStep) and step.scaler.is_enabled() else None
    if scaler is not None and state:
        scaler.load_state_dict(state)
    return scaler


def replayed(step) -> bool:
    """Whether ``step`` captured a CUDA graph and replays it (False where a capture failed)."""
    return isinstance(step, GraphedStep) and step.input is not None


class GraphedStep:
    """``step(model, batch)`` + backward + ``opt.step()``, eager for ``warmup`` calls, then one
    CUDA graph replayed per call. ``prec`` is a resolved precision (bf16 or fp32). The CUDA calls
    are the three small methods at the end (a test replaces them to check the rest on a CPU).
    ``fallback``: where the capture fails (other than for memory), called with the reason; this
    batch and every later one then train eagerly. Without it, the failure is raised."""

    def __init__(self, model: nn.Module, step: Step, opt: torch.optim.Optimizer, device: torch.device | str,
                 prec: str, warmup: int = 3, fallback: Callable[[str], None] | None = None):
        check(device, prec)
        if not all(group.get("capturable") for group in opt.param_groups):
            raise ValueError("CUDA graphs need an optimiser built with capturable=True "
                             "(perceptual.runtime.precision.adam(..., capturable=True))")
        self.model, self.step, self.opt, self.prec, self.warmup = model, step, opt, prec, warmup
        self.device = torch.device(device)
        self.calls = 0
        self._side: torch.cuda.Stream | None = None  # made on first use (needs CUDA)
        self.input: torch.Tensor | None = None  # the captured batch (None until the capture)
        self.terms: dict[str, torch.Tensor] = {}  # the captured loss terms
        self.first: tuple | None = None  # (shape, dtype) of the first batch
        self.fallback, self.eager = fallback, False  # eager: the capture failed, fallback given

    def _train(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        # autocast's weight-cast cache would hand the graph tensors made outside it: casts run inside
        with precision.autocast(self.device, self.prec, cache=False):
            terms = self.step(self.model, batch)
        terms["total"].backward()
        self.opt.step()
        return detached(terms)

    def __call__(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        """Train on ``batch`` (on the device, the same shape and dtype every call); the loss terms."""
        if self.first is None:
            self.first = (batch.shape, batch.dtype)
        elif (batch.shape, batch.dtype) != self.first:
            raise ValueError(f"a CUDA graph replays one batch shape and dtype: {tuple(self.first[0])} "
                             f"{self.first[1]}, got {tuple(batch.shape)} {batch.dtype}")
        self.calls += 1

        def eager() -> dict[str, torch.Tensor]:
            self.opt.zero_grad(set_to_none=True)
            return self._train(batch)

        if self.eager:
            return eager()
        if self.calls <= self.warmup:
            return self._on_side_stream(eager)
        if self.input is None:
            self.input = batch.clone()  # (B, 3, H, W), the batch's memory format kept
            self.opt.zero_grad(set_to_none=True)  # backward allocates the gradients in the graph's pool
            try:
                self.terms = self._capture(lambda: self._train(self.input))
            except torch.cuda.OutOfMemoryError:
                raise
            except RuntimeError as err:  # what a failed capture raises; nothing was run, nothing stepped
                if self.fallback is None:
                    raise
                self._abandon()  # raises if the failure left the device broken (not a capture's fault)
                self.fallback(f"the training step could not be captured as a CUDA graph "
                              f"({first_cause(err)}); training on eagerly")
                self.eager, self.input = True, None
                return eager()  # its zero_grad drops the gradients the capture allocated
        else:
            self.input.copy_(batch)
        self._replay()  # capture records without running: this call's batch runs here
        return self.terms

    # the CUDA calls ---------------------------------------------------------------------------

    def _on_side_stream(self, fn: Callable[[], dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        """``fn()`` on a side stream (warm-up before a capture, as CUDA requires)."""
        with torch.cuda.device(self.device):
            main = torch.cuda.current_stream()
            self._side = self._side or torch.cuda.Stream()
            self._side.wait_stream(main)
            with torch.cuda.stream(self._side):
                out = fn()
            main.wait_stream(self._side)
        return out

    def _capture(self, fn: Callable[[], dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        """Record ``fn()`` into a CUDA graph (nothing runs); its outputs are the graph's. Thread-local
        capture: the data loader's pin-memory thread keeps calling CUDA meanwhile."""
        with torch.cuda.device(self.device):
            caller = torch.cuda.current_stream()
            self._graph = torch.cuda.CUDAGraph()
            try:
                with torch.cuda.graph(self._graph, capture_error_mode="thread_local"):
                    return fn()
            finally:  # older PyTorch (pyproject allows 2.4) leaves the capture's stream current when
                torch.cuda.set_stream(caller)  # the capture fails; newer ones restore it (graphs.py)

    def _abandon(self) -> None:
        """After a failed capture: drop the graph and its memory pool; a device left in an error
        state raises here."""
        self._graph = None
        torch.cuda.synchronize(self.device)
        torch.cuda.empty_cache()

    def _replay(self) -> None:
        self._graph.replay()
