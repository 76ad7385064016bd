"""No function over 80 lines in zfnet/ and kernels/ (STYLE.md: a reader can hold it in mind).

Walks every module with ast; a function's length is from its `def` line to its last line,
docstring included; nested functions count on their own and inside their parent. The longest
ones are printed (pytest -s, or on failure) so the next to shorten is in sight.
"""
import ast
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LIMIT = 80


def function_lengths(roots=("zfnet", "kernels")):
    """[(lines, 'path:Class.function')] for every function under the given folders, longest first."""
    found = []

    def walk(node, path, prefix):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                found.append((child.end_lineno - child.lineno + 1, f"{path}:{prefix}{child.name}"))
                walk(child, path, f"{prefix}{child.name}.")
            elif isinstance(child, ast.ClassDef):
                walk(child, path, f"{prefix}{child.name}.")
            else:
                walk(child, path, prefix)

    for root in roots:
        for path in sorted((REPO / root).rglob("*.py")):
            rel = path.relative_to(REPO).as_posix()
            walk(ast.parse(path.read_text(encoding="utf-8"), rel), rel, "")
    return sorted(found, key=lambda row: (-row[0], row[1]))


def test_the_walk_finds_methods_and_nested_functions():
    names = {name for _, name in function_lengths()}
    assert "kernels/conv2d.py:conv2d" in names
    assert "kernels/conv2d.py:_filters_with_bias.make" in names                 # nested
    assert "zfnet/viz/correspondence.py:_Masking.measure" in names              # a method


def test_no_function_over_80_lines():
    lengths = function_lengths()
    print("longest functions:\n" + "\n".join(f"  {n:4d}  {name}" for n, name in lengths[:10]))
    too_long = [f"{name} ({n} lines)" for n, name in lengths if n > LIMIT]
    assert not too_long, f"functions over {LIMIT} lines, split them: " + ", ".join(too_long)
