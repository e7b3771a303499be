"""Validate Kubernetes manifests against KServe's published resource schemas: the `kserve` SDK's
models, generated from the OpenAPI schema KServe's CRDs are built from, and the `kubernetes`
client's models for the core types they embed (containers, probes, …).

Run with the kserve tool venv's Python (.venv/tools-kserve, `make install-dev`):

    python tests/integration/kserve_schema.py deploy/kserve/*.yaml

Strict as a server with field validation on: an unknown field, a value of the wrong type, a
missing required field or a value outside an enum is an error. Prints one line per error and
exits 1 if there is any.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import kserve.models as kserve_models
import kubernetes.client.models as core
import yaml

KINDS = {
    ("serving.kserve.io/v1alpha1", "ServingRuntime"): "V1alpha1ServingRuntime",
    ("serving.kserve.io/v1alpha1", "ClusterServingRuntime"): "V1alpha1ClusterServingRuntime",
    ("serving.kserve.io/v1beta1", "InferenceService"): "V1beta1InferenceService",
}
SCALARS: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "int": (int,),
    "float": (int, float),
    "bool": (bool,),
    "object": (object,),  # int-or-string and free-form fields
    "datetime": (str,),
    "date": (str,),
}


def model(name: str) -> type:
    found = getattr(kserve_models, name, None) or getattr(core, name, None)
    if found is None:
        raise LookupError(f"no model {name} in kserve or kubernetes")
    return found


def check(kind: str, value: Any, path: str, errors: list[str]) -> None:
    # Both spellings occur: kubernetes' "list[V1Container]", "dict(str, str)" and kserve's
    # "List[…]", "Dict[str, str]".
    if (inner := re.fullmatch(r"[lL]ist\[(.+)\]", kind)) is not None:
        if not isinstance(value, list):
            errors.append(f"{path}: expected a list")
            return
        for i, item in enumerate(value):
            check(inner[1], item, f"{path}[{i}]", errors)
    elif (inner := re.fullmatch(r"(?:dict\(|Dict\[)(\w+), (.+)[)\]]", kind)) is not None:
        if not isinstance(value, dict):
            errors.append(f"{path}: expected a map")
            return
        for key, item in value.items():
            check(inner[2], item, f"{path}.{key}", errors)
    elif kind in SCALARS:
        if not isinstance(value, SCALARS[kind]) or (kind == "int" and isinstance(value, bool)):
            errors.append(f"{path}: expected {kind}, got {type(value).__name__}")
    else:
        check_object(model(kind), value, path, errors)


def check_object(cls: type, value: Any, path: str, errors: list[str]) -> None:
    if not isinstance(value, dict):
        errors.append(f"{path}: expected an object ({cls.__name__})")
        return
    attribute = {json: python for python, json in cls.attribute_map.items()}  # type: ignore[attr-defined]
    for key, item in value.items():
        if key not in attribute:
            errors.append(f"{path}.{key}: unknown field of {cls.__name__}")
            continue
        check(cls.openapi_types[attribute[key]], item, f"{path}.{key}", errors)  # type: ignore[attr-defined]
    known = {attribute[k]: v for k, v in value.items() if k in attribute}
    try:  # the generated setters reject a missing required field and a value outside an enum
        cls(**known)
    except ValueError as exc:
        errors.append(f"{path}: {cls.__name__}: {' '.join(str(exc).split())[:300]}")


def validate(document: dict[str, Any], where: str) -> list[str]:
    key = (document.get("apiVersion"), document.get("kind"))
    if key not in KINDS:
        return [f"{where}: not a KServe resource this check knows: {key}"]
    errors: list[str] = []
    check_object(model(KINDS[key]), document, f"{where}:{key[1]}", errors)
    return errors


def main(paths: list[str]) -> int:
    errors = []
    for name in paths:
        for document in yaml.safe_load_all(Path(name).read_text()):
            if document and document.get("kind") != "Kustomization":
                errors += validate(document, name)
    for error in errors:
        print(error)
    return 1 if errors else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
