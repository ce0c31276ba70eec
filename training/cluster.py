"""Where the families' fits and evaluations run: here, or on a cluster (``--cluster``).

The families are independent tasks (:func:`predictor.training.evaluate.run_family`),
dispatched with joblib; a cluster is a joblib backend of an existing engine,
not a scheduler of ours:

* ``local``: a Dask ``LocalCluster`` on this machine (one worker process per
  core), the way to try it;
* ``tcp://host:8786``: the Dask distributed scheduler at that address
  (``dask scheduler`` and ``dask worker tcp://host:8786`` on the machines);
* ``ray://host:10001``: a Ray cluster (``pip install ray``), through Ray's joblib
  backend.

The report is the same wherever the tasks ran: each family seeds its own
randomness and reads only the features it is given.

>>> with cluster_backend(None) as where:
...     where
'this machine'
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from joblib import parallel_config

__all__ = ["cluster_backend"]


@contextmanager
def cluster_backend(address: str | None) -> Iterator[str]:
    """Run joblib's ``Parallel`` inside on the cluster at ``address`` (``None``: here).

    Yields a description of where the tasks run.

    Raises
    ------
    ValueError
        For an address that names no known cluster, or a Ray cluster without Ray.
    """
    if address is None:
        yield "this machine"
        return
    if address == "local" or address.startswith("tcp://"):
        from dask.distributed import Client, LocalCluster

        if address == "local":
            cluster = LocalCluster(processes=True, threads_per_worker=1,
                                   dashboard_address=None)
            client = Client(cluster)
        else:
            cluster, client = None, Client(address, timeout="30s")
        try:
            workers = len(client.scheduler_info()["workers"])
            with parallel_config(backend="dask"):
                yield f"Dask at {client.scheduler.address} ({workers} workers)"
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
        return
    if address.startswith("ray://"):
        try:
            import ray
            from ray.util.joblib import register_ray
        except ImportError:
            raise ValueError("--cluster ray://...: Ray is not installed "
                             "(pip install 'ray[default]')") from None
        ray.init(address=address)
        register_ray()
        try:
            with parallel_config(backend="ray"):
                yield f"Ray at {address}"
        finally:
            ray.shutdown()
        return
    raise ValueError(f"--cluster {address!r}: give local, tcp://host:port (Dask) or "
                     "ray://host:port (Ray)")
