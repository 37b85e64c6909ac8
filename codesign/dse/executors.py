"""Executors: run evaluation tasks and yield their outcomes as they finish.

``inline`` (one worker, in this process), ``pool`` (a local process pool, the default) and
``ray`` (a Ray cluster: ``ray.init(address)``; the ``distributed`` extra).  Every executor runs
the same pure `evaluate`, so the outcomes of a seed do not depend on the executor.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from codesign.dse.evaluate import Outcome, Task, evaluate
from codesign.errors import InputError


@dataclass(frozen=True, slots=True)
class ExecutorOptions:
    workers: int = 1
    address: str | None = None  # ray: cluster address (None: start a local one)


def run_inline(tasks: Sequence[Task], options: ExecutorOptions) -> Iterator[Outcome]:
    for task in tasks:
        yield evaluate(task)


def run_pool(tasks: Sequence[Task], options: ExecutorOptions) -> Iterator[Outcome]:
    """A process pool of ``workers`` (spawned: no state shared with the parent)."""
    if options.workers <= 1 or len(tasks) <= 1:
        yield from run_inline(tasks, options)
        return
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(max_workers=options.workers, mp_context=context)
    try:
        pending = {pool.submit(evaluate, task) for task in tasks}
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                yield future.result()
    finally:  # on Ctrl-C or an early stop: drop what has not started, do not wait for it
        pool.shutdown(wait=False, cancel_futures=True)


def run_ray(tasks: Sequence[Task], options: ExecutorOptions) -> Iterator[Outcome]:
    """Ray tasks, ``workers`` in flight at a time."""
    try:
        import ray
    except ImportError:
        raise InputError("--executor ray needs ray: pip install 'codesign[distributed]'") from None
    if not ray.is_initialized():
        ray.init(
            address=options.address,
            num_cpus=None if options.address else max(options.workers, 1),
            include_dashboard=False,
            log_to_driver=False,
            ignore_reinit_error=True,
        )
    remote = ray.remote(num_cpus=1)(evaluate)
    queue = list(tasks)
    in_flight: list = []
    limit = max(options.workers, 1)
    try:
        while queue or in_flight:
            while queue and len(in_flight) < limit:
                in_flight.append(remote.remote(queue.pop(0)))
            done, in_flight = ray.wait(in_flight, num_returns=1)
            for ref in done:
                yield ray.get(ref)
    finally:
        for ref in in_flight:
            ray.cancel(ref, force=True)


EXECUTORS: dict[str, Callable[[Sequence[Task], ExecutorOptions], Iterator[Outcome]]] = {
    "inline": run_inline,
    "pool": run_pool,
    "ray": run_ray,
}


def executor(name: str) -> Callable[[Sequence[Task], ExecutorOptions], Iterator[Outcome]]:
    if name not in EXECUTORS:
        raise InputError(f"--executor {name!r}: unknown (known: {', '.join(EXECUTORS)})")
    return EXECUTORS[name]
