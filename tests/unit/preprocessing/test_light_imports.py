"""The API Lambdas import the spec, errors and geometry without paying for numpy or Pillow."""

from __future__ import annotations

import subprocess
import sys


def test_light_modules_import_neither_numpy_nor_pillow() -> None:
    code = (
        "import sys\n"
        "import tensorgate_preprocessing, tensorgate_preprocessing.spec\n"
        "import tensorgate_preprocessing.errors, tensorgate_preprocessing.geometry\n"
        "heavy = sorted(name for name in ('numpy', 'PIL') if name in sys.modules)\n"
        "print(','.join(heavy))\n"
    )
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert completed.stdout.strip() == ""
