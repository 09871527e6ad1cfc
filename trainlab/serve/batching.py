"""Dynamic batching: image requests that arrive while the model is busy are run together, in one forward pass.

One task per server process takes the first waiting request, then every request already waiting (and, with a
`wait`, those arriving within it), up to `max_batch` images, runs them as one batch in a worker thread, and hands
each request its own rows. With no wait nothing is delayed: a lone request runs at once, as without batching.
Texts are not batched: their token ids are padded to each request's longest, and more padding could change a
model's answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch


Inputs = np.ndarray | torch.Tensor  # one request's: uint8 images (N, H, W, C) or model inputs (N, ...)


class Batcher:
    """`await batcher(inputs)`: the outputs of `forward` for one request's inputs, computed together with the inputs
    of the requests waiting beside it; `forward` takes the list of their inputs and returns the rows of all, in order."""

    def __init__(self, forward: Callable[[list[Inputs]], np.ndarray], max_batch: int, wait_s: float = 0.0):
        self.forward, self.max_batch, self.wait_s = forward, max_batch, wait_s
        self.queue: asyncio.Queue[tuple[Inputs, asyncio.Future]] | None = None
        self.task: asyncio.Task | None = None
        self.batches: list[int] = []  # images per forward pass, for tests and the load benchmark
        # one thread of its own: the forward passes run one at a time anyway, and a hand-off to it costs less than
        # to the shared pool of run_in_threadpool
        self.thread = ThreadPoolExecutor(1, thread_name_prefix="trainlab-batch")

    async def __call__(self, inputs: Inputs) -> np.ndarray:
        """The model's outputs for `inputs` (N, ...), computed in a batch with whatever else is waiting."""
        if self.task is None or self.task.done():  # started in the server's own event loop
            self.queue = asyncio.Queue()
            self.task = asyncio.get_running_loop().create_task(self._run())
        future = asyncio.get_running_loop().create_future()
        await self.queue.put((inputs, future))
        return await future

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            waiting = [await self.queue.get()]
            rows, deadline = len(waiting[0][0]), loop.time() + self.wait_s
            while rows < self.max_batch:
                try:
                    left = deadline - loop.time()
                    item = self.queue.get_nowait() if left <= 0 else await asyncio.wait_for(self.queue.get(), left)
                except (asyncio.QueueEmpty, asyncio.TimeoutError):
                    break
                waiting.append(item)
                rows += len(item[0])
            await self._forward(waiting)

    async def _forward(self, waiting: list[tuple[Inputs, asyncio.Future]]) -> None:
        sizes = [len(inputs) for inputs, _ in waiting]
        try:
            outputs = await asyncio.get_running_loop().run_in_executor(self.thread, self.forward, [inputs for inputs, _ in waiting])
        except Exception as error:  # every request of the batch gets the server's error
            for _, future in waiting:
                if not future.done():
                    future.set_exception(error)
            return
        self.batches.append(sum(sizes))
        start = 0
        for size, (_, future) in zip(sizes, waiting):
            if not future.done():  # a client that went away leaves a cancelled future
                future.set_result(outputs[start : start + size])
            start += size
