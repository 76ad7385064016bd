"""benchmarks/ as a pytest directory: the registry imports as `benchmarks.cases` from the repo root."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def pytest_configure(config):
    config.addinivalue_line("markers", "quick: the cases of benchmarks/report.py --quick")
