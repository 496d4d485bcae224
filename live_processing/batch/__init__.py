"""Batch reprocessing: a finished run's raw frames again, with new settings, on Dask.

:mod:`.tasks` is what a worker runs (a chunk of frames integrated), :mod:`.cluster`
starts or joins the Dask cluster and maps the chunks with progress, :mod:`.replay`
feeds the run's spooled documents and the new patterns through the live processor's
own runs and finisher, and :mod:`.versions` keeps the result as a new file version.
"""
