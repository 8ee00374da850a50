"""drumfire on a Dask cluster (`pip install 'drumfire[dask]'`): see the README."""

from ._cluster_dask import run_dask

__all__ = ["run_dask"]
