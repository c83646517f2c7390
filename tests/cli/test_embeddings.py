"""``import zss.embeddings`` in a fresh interpreter does not load torch."""

from __future__ import annotations


def test_the_embedding_package_loads_without_torch():
    """Building class vectors needs gensim and numpy only: ``zss.embeddings`` (and the class
    lists it reads, ``zss.data.class_names``) must not pull in torch (~700 MiB of RSS), which
    would void bench_embeddings.py's memory comparison and load it for nothing."""
    import subprocess
    import sys

    code = ("import sys, zss.embeddings, zss.data.class_names; "
            "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.')))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "[]"
