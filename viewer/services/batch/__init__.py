"""``hounsfield batch``: AI over every series of a folder (later a PACS) on a Ray cluster or a local Ray runtime,
results written to a sink where the app finds them when the study is opened.

- :mod:`~viewer.services.batch.sources` - which series (folders; ``--watch`` polls them).
- :mod:`~viewer.services.batch.worker` - the models loaded once per worker, run per series.
- :mod:`~viewer.services.batch.executors` - Ray actors (local runtime on loopback, or a cluster) or inline.
- :mod:`~viewer.services.batch.run` - the driver: load -> worker -> sink, with the manifest.
- :mod:`~viewer.services.batch.manifest` - SQLite record of every series (resume, retries, timings).
- :mod:`~viewer.services.batch.sinks` - the results folder, each series written whole or not at all.
- :mod:`~viewer.services.batch.results` - reading a series' results back (the app).
- :mod:`~viewer.services.batch.progress` - the live line and the summary table.

Importing this package imports neither Ray nor torch.
"""
