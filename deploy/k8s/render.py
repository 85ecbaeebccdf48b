"""`python -m deploy.k8s.render dev|prod`: print an overlay's Kubernetes objects as one
multi-document YAML, ready for `kubectl apply -f -`.

The folders beside this file are an ordinary kustomize tree (`base/`, `overlays/dev`,
`overlays/prod`), so `kubectl kustomize deploy/k8s/overlays/prod` renders the same objects; this
module renders them without kustomize, for the tests and for machines without kubectl. It knows
only the part of kustomize the tree uses, and refuses anything else in a kustomization.yaml
rather than ignore it:

- `resources`: YAML files (one or more documents) and folders with a kustomization.yaml;
- `namespace`: set on every namespaced object;
- `images`: `name` with `newName`, `newTag` or `digest`, for every container and init container;
- `patches`: `path` to a file of strategic-merge patches, each applied to the object of the same
  kind and name. Maps merge key by key, a `null` deletes the key, lists of named objects
  (containers, env, volumes, ...) of the built-in kinds merge by `name`, and any other list is
  replaced, as kustomize does for custom resources such as KEDA's ScaledObject.

tests/unit/test_k8s_manifests.py checks, where kubectl is installed, that both renderings agree.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]

ROOT = Path(__file__).resolve().parent
OVERLAYS = ("dev", "prod")
Object = dict[str, Any]

# Kinds without a namespace among those the tree uses.
CLUSTER_SCOPED = frozenset({"Namespace"})
# Custom resources: kustomize has no schema for them, so their lists are replaced, never merged.
CUSTOM_API_GROUPS = ("keda.sh/",)
KNOWN_FIELDS = frozenset({"apiVersion", "kind", "resources", "namespace", "images", "patches"})


class RenderError(Exception):
    """A kustomization this renderer does not understand, or a patch that matches nothing."""


def render(overlay: str) -> list[Object]:
    """The objects of `overlays/<overlay>`, patched, in the order their files list them."""
    if overlay not in OVERLAYS:
        raise RenderError(f"unknown overlay {overlay!r}; expected one of {', '.join(OVERLAYS)}")
    return build(ROOT / "overlays" / overlay)


def build(folder: Path) -> list[Object]:
    """The objects of the kustomization in `folder`."""
    spec = _load_one(folder / "kustomization.yaml")
    unknown = set(spec) - KNOWN_FIELDS
    if unknown:
        raise RenderError(f"{folder}/kustomization.yaml: unsupported fields {sorted(unknown)}")
    objects: list[Object] = []
    for entry in spec.get("resources", []):
        path = (folder / entry).resolve()
        objects.extend(build(path) if path.is_dir() else list(_load_all(path)))
    for patch in spec.get("patches", []):
        if set(patch) != {"path"}:
            raise RenderError(f"{folder}: only `patches: - path: FILE` is supported, not {patch}")
        for document in _load_all(folder / patch["path"]):
            _apply_patch(objects, document)
    for image in spec.get("images", []):
        for obj in objects:
            _set_image(obj, image)
    namespace = spec.get("namespace")
    if namespace:
        for obj in objects:
            if obj["kind"] not in CLUSTER_SCOPED:
                obj["metadata"]["namespace"] = namespace
    return objects


def to_yaml(objects: list[Object]) -> str:
    return "".join("---\n" + yaml.safe_dump(obj, sort_keys=False, width=100) for obj in objects)


def _load_one(path: Path) -> Object:
    documents = list(_load_all(path))
    if len(documents) != 1:
        raise RenderError(f"{path}: expected one document, found {len(documents)}")
    return documents[0]


def _load_all(path: Path) -> Iterator[Object]:
    with path.open() as file:
        for document in yaml.safe_load_all(file):
            if document is not None:
                yield document


def _apply_patch(objects: list[Object], patch: Object) -> None:
    kind, name = patch["kind"], patch["metadata"]["name"]
    for obj in objects:
        if obj["kind"] == kind and obj["metadata"]["name"] == name:
            custom = obj["apiVersion"].startswith(CUSTOM_API_GROUPS)
            merged = _merge(obj, patch, merge_named_lists=not custom)
            obj.clear()
            obj.update(merged)
            return
    raise RenderError(f"patch for {kind}/{name} matches no object")


def _merge(base: Any, patch: Any, *, merge_named_lists: bool) -> Any:
    if isinstance(base, dict) and isinstance(patch, dict):
        merged = dict(base)
        for key, value in patch.items():
            if value is None:
                merged.pop(key, None)
            elif key in merged:
                merged[key] = _merge(merged[key], value, merge_named_lists=merge_named_lists)
            else:
                merged[key] = value
        return merged
    if merge_named_lists and _named(base) and _named(patch):
        items = {item["name"]: item for item in base}
        for item in patch:
            name = item["name"]
            items[name] = (
                _merge(items[name], item, merge_named_lists=True) if name in items else item
            )
        return list(items.values())
    return patch


def _named(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(i, dict) and "name" in i for i in value)


def _set_image(obj: Any, image: Object) -> None:
    """kustomize's `images`: rewrite every container image named `image["name"]`."""
    if isinstance(obj, dict):
        for key, value in obj.items():
            if key in ("containers", "initContainers") and isinstance(value, list):
                for container in value:
                    container["image"] = _retag(container["image"], image)
            else:
                _set_image(value, image)
    elif isinstance(obj, list):
        for item in obj:
            _set_image(item, image)


def _retag(reference: str, image: Object) -> str:
    name, tag = reference, ""
    if "@" in name:
        name, tag = name.split("@", 1)
        tag = "@" + tag
    elif ":" in name.rsplit("/", 1)[-1]:
        name, tag = name.rsplit(":", 1)
        tag = ":" + tag
    if name != image["name"]:
        return reference
    if "newTag" in image:
        tag = f":{image['newTag']!s}"
    if "digest" in image:
        tag = f"@{image['digest']}"
    return f"{image.get('newName', name)}{tag}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.k8s.render", description=__doc__)
    parser.add_argument("overlay", choices=OVERLAYS)
    args = parser.parse_args(argv)
    sys.stdout.write(to_yaml(render(args.overlay)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
