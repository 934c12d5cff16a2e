"""The sweep's two execution backends: a local process pool (or this process) and a Dask cluster. Each runs
:func:`~sgd_dmft.sweep.tasks.run_task` per task and hands the result to ``done`` as the task ends."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from .. import parallel
from ..config import Config
from ..errors import SgdDmftError
from .cache import task_hash
from .tasks import run_task


@dataclass
class Task:
    """A task still to run: grid point index, kind, its config and cache file, the point as text."""

    point: int
    kind: str
    config: Config
    cache: Path
    label: str = ""

    @property
    def toml(self) -> str:
        return self.config.to_toml()


def run_local(tasks: list[Task], done: Callable[[Task, dict], None], workers: int) -> None:
    """The tasks in this process (``workers = 1``) or in a spawn pool, each handed to ``done`` as it ends."""
    parallel.map_as_completed(run_task, [(t.toml, t.kind, str(t.cache), t.config.trust_code) for t in tasks],
                              workers=workers,
                              on_result=lambda i, res: done(tasks[i], res))


def run_dask(tasks: list[Task], done: Callable[[Task, dict], None], scheduler: Any) -> None:
    """The tasks on a Dask cluster (an address or a ``distributed.Client``), each handed to ``done`` as it ends;
    a ``KilledWorker`` is a one-line SgdDmftError naming the grid point."""
    try:
        from distributed import Client, as_completed
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("--scheduler needs dask.distributed: pip install 'sgd-dmft[dask]'") from e

    own = not isinstance(scheduler, Client)
    client = Client(scheduler) if own else scheduler
    futs = {}
    try:
        for t in tasks:
            f = client.submit(run_task, t.toml, t.kind, str(t.cache), trust_code=t.config.trust_code, retries=2, pure=False,
                              key=f"sgd-dmft-{t.kind}-{task_hash(t.toml, t.kind)}")
            futs[f] = t
        for f in as_completed(list(futs)):
            try:
                res = f.result()
            except Exception as exc:  # noqa: BLE001
                if type(exc).__name__ != "KilledWorker":
                    raise
                t = futs[f]
                raise SgdDmftError(f"sweep: the Dask worker running grid point {t.label} ({t.kind}) died repeatedly "
                                   f"(KilledWorker: out of memory or killed?); finished tasks are cached, rerun to "
                                   f"resume") from None
            done(futs[f], res)
    except BaseException:
        client.cancel(list(futs))
        raise
    finally:
        if own:
            client.close()
