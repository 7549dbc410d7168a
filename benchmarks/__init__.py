"""Side-by-side benchmark of GemiRec and its baselines (accuracy, ablations, dictionary, speed, memory).

    python -m benchmarks.run --budget small      # every table of docs/benchmarks.md (about 90 minutes, 2 cores)
    python -m benchmarks.run --quick --out DIR   # a few minutes on the tiny test data (the test suite runs it)
    python -m benchmarks.report --budget small   # rebuild docs/benchmarks.md from the JSON already written

See ``benchmarks/README.md`` for the layout of the results.
"""
