"""The fuzz suite for zfnet's weight-file readers (see README, "Fuzzing the weight readers").

    python -m pytest -q tests/fuzz                 # CI: a few thousand cases per format, fixed seed
    python -m tests.fuzz --minutes 10              # the long run, every format in turn
    python -m tests.fuzz --minutes 5 --format pth  # one format

seeds.py builds the corpus from the shared weights, mutators.py changes it, runner.py runs the
cases and counts the outcomes.
"""
