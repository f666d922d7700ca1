"""Experiment entry points (``python experiments/run.py …``), the run configuration's schema, the sweep report
and the benchmarks. Importable as a package (``from experiments.run import run``) once the project is installed
(``pip install -e .``), or from the checkout's root."""
