"""Run folders, sweeps and data export: the infrastructure under the experiments (no model code).

``runs.folders``: new run folders that never overwrite, atomic writes (a failed one names its file
in one line), readers that name a damaged file in one line, ``params.json`` composition, software
versions, progress lines. ``runs.sweep``: one experiment over a grid x seeds in parallel
processes, resumable.
"""
