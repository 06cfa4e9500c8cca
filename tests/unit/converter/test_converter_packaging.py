"""The converter image installs what pyproject.toml declares and runs the handler template.yaml names."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[3]
CONVERTER = ROOT / "functions" / "converter"


def _requirements_txt() -> dict[str, Requirement]:
    lines = (CONVERTER / "requirements.txt").read_text().splitlines()
    parsed = [Requirement(line) for line in (line.split("#")[0].strip() for line in lines) if line]
    return {requirement.name.lower(): requirement for requirement in parsed}


def _declared() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    names = [*project["dependencies"], *extras["preprocessing"], *extras["converter"]]
    return [Requirement(name) for name in names if not name.startswith("tensorgate")]


def test_requirements_txt_covers_the_converter_extra_within_its_ranges():
    image = _requirements_txt()

    for declared in _declared():
        installed = image.get(declared.name.lower())
        assert installed is not None, f"{declared.name} is missing from functions/converter/requirements.txt"
        pins = [spec.version for spec in installed.specifier if spec.operator == "=="]
        if pins:
            assert declared.specifier.contains(pins[0]), f"{installed} is outside pyproject's {declared}"
        else:
            assert installed.specifier == declared.specifier, f"{installed} differs from pyproject's {declared}"


def test_dockerfile_uses_the_lambda_python_312_base_and_the_template_handler():
    dockerfile = (CONVERTER / "Dockerfile").read_text()
    template = (ROOT / "template.yaml").read_text()

    assert re.search(r"^FROM public\.ecr\.aws/lambda/python:3\.12$", dockerfile, re.MULTILINE)
    command = re.search(r'^CMD \["([^"]+)"\]$', dockerfile, re.MULTILINE)
    assert command is not None and command.group(1) == "functions.converter.app.handler"
    assert 'Command: ["functions.converter.app.handler"]' in template
    assert "Dockerfile: functions/converter/Dockerfile" in template
    for copied in ("shared/", "layers/preprocessing/", "functions/converter/", "functions/__init__.py"):
        assert f"COPY {copied}" in dockerfile


def test_declarations_and_the_common_types_import_without_tensorflow():
    code = (
        "import sys\n"
        "import functions.converter.declarations, functions.converter.convert, functions.converter.pytorch_sources\n"
        "from functions.converter.tensorflow_sources.common import Conversion, Reference, Requested, Requests\n"
        "heavy = ('tensorflow', 'keras', 'tf_keras', 'tf2onnx', 'torch', 'onnxscript')\n"
        "print(sorted(name for name in heavy if name in sys.modules))\n"
    )
    completed = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)

    assert completed.stdout.strip() == "[]"
