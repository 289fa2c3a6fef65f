"""Training batches that make a run resumable: the data order is a pure function of
(seed, iteration) (:class:`IterationSampler`), and photos are decoded once and cached
(:class:`CachedImages`), skipping unreadable ones with one warning each."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import torch
from torch.utils.data import Dataset

from perceptual.core import images

log = logging.getLogger("perceptual.train")


class IterationSampler(torch.utils.data.Sampler):
    """Yields, for iterations ``start … total-1``, a batch of (index, seed) pairs.

    Epoch e visits the items in ``randperm(n, seed + e)`` order; batch i takes the items at
    positions i·B … i·B+B−1 of the concatenated epochs. The per-item seed drives random crops.
    Everything is a function of (seed, iteration): resuming needs only the iteration.
    """

    def __init__(self, n: int, batch_size: int, seed: int, start: int, total: int):
        if n == 0:
            raise ValueError("no training images")
        self.n, self.b, self.seed, self.start, self.total = n, batch_size, seed, start, total
        self._epoch, self._perm = -1, torch.empty(0, dtype=torch.long)

    def order(self, epoch: int) -> torch.Tensor:
        if self._epoch != epoch:
            self._epoch = epoch
            self._perm = torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed * 1_000_003 + epoch))
        return self._perm

    def batch(self, iteration: int) -> list[tuple[int, int]]:
        out = []
        for k in range(iteration * self.b, (iteration + 1) * self.b):
            epoch, pos = divmod(k, self.n)
            out.append((int(self.order(epoch)[pos]), self.seed * 1_000_003 + k))
        return out

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        for it in range(self.start, self.total):
            yield self.batch(it)

    def __len__(self) -> int:
        return self.total - self.start


class CachedImages(Dataset):
    """Training photos, read once, transformed by :meth:`prepare` and rounded to 8-bit values;
    the first ``cache_limit`` stay in memory as uint8. Every visit sees the same pixels, cached
    or not (a resumed run must see what an uninterrupted one saw). Unreadable files are skipped
    with one warning each (the next file stands in), so one bad photo does not stop a long run;
    :attr:`skipped` collects them (training and validation) for the summary at the end."""

    cache_limit = 2000

    def __init__(self, files: Sequence[Path]):
        self.files = list(files)
        self._cache: dict[int, torch.Tensor] = {}
        self.skipped: dict[Path, str] = {}  # unreadable file → error, warned about once

    def prepare(self, image: torch.Tensor) -> torch.Tensor:
        return image

    def image(self, index: int) -> torch.Tensor:
        if index in self._cache:
            return self._cache[index].float()
        for k in range(len(self.files)):
            path = self.files[(index + k) % len(self.files)]
            if path in self.skipped:
                continue
            try:
                img = self.prepare(images.read_image(path)).round().clamp(0, 255)
                break
            except images.ImageError as err:
                self._skip(path, err, "training")
        else:
            raise images.ImageError("no readable training image in the folder")
        if len(self._cache) < self.cache_limit:
            self._cache[index] = img.to(torch.uint8)
        return img

    def __len__(self) -> int:
        return len(self.files)

    def _skip(self, path: Path, err: Exception, role: str) -> None:
        self.skipped[path] = str(err)
        log.warning("skipping %s image (unreadable; not reported again): %s", role, err)

    def stack(self, files: Sequence[Path], finish: Callable[[torch.Tensor], torch.Tensor] = lambda x: x
              ) -> torch.Tensor | None:
        """Held-out ``files`` prepared like training images (then ``finish``), as one batch
        (B, 3, H, W); unreadable ones are skipped like training images. None if none is readable."""
        out = []
        for path in files:
            try:
                out.append(finish(self.prepare(images.read_image(path)).round().clamp(0, 255)))
            except images.ImageError as err:
                self._skip(path, err, "validation")
        if files and not out:
            log.warning("no readable validation image: validation loss is not logged")
        return torch.stack(out) if out else None

    def summary(self) -> str | None:
        """One line naming the unreadable files skipped so far, or None."""
        if not self.skipped:
            return None
        names = [str(p) for p in self.skipped]
        more = f" and {len(names) - 5} more" if len(names) > 5 else ""
        return f"{len(names)} unreadable image(s) skipped: {', '.join(names[:5])}{more}"


def prefetch(batches: Iterable, depth: int = 2) -> Iterator:
    """``batches`` in order, the next ``depth`` made in a background thread while the caller trains
    on the current one (decoding and resizing photos release the GIL): data loading overlapped with
    the step where no loader processes are used (a CPU). An exception while making a batch is raised
    here, at that batch; leaving the loop early stops the thread."""
    import queue
    import threading

    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def produce() -> None:
        try:
            for batch in batches:
                while not stop.is_set():
                    try:
                        q.put((batch, None), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put((done, None))
        except BaseException as err:  # noqa: BLE001 — handed to the consumer
            q.put((None, err))

    thread = threading.Thread(target=produce, name="prefetch", daemon=True)
    thread.start()
    try:
        while True:
            batch, err = q.get()
            if err is not None:
                raise err
            if batch is done:
                return
            yield batch
    finally:
        stop.set()
        thread.join(timeout=5)
