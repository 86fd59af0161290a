"""Loading ``.keras`` files safely, with one-line errors that say what is wrong.

``load_keras(path)`` loads with Keras ``safe_mode=True``: a file that needs arbitrary Python code to
load (a ``Lambda`` layer, or a custom layer class this process does not know) is refused with a
message naming the layer. ``unsafe=True`` (the CLI's ``--unsafe``) lifts the Lambda restriction for
files the user trusts. Everything else that can go wrong (missing, empty, not a zip, truncated or
corrupt archive) is a ``ModelError`` naming the file.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

from edge_dfd.core.errors import ModelError, require
from edge_dfd.core.util import first_line

CONFIG_MEMBER = "config.json"
_KNOWN_MODULE_PREFIXES = ("keras", "edge_dfd")


def read_config(p: Path) -> dict:
    """Validate a ``.keras`` container and return the parsed model config (raises ModelError); no TensorFlow."""
    if not p.exists():
        raise ModelError(f"{p}: model file not found")
    if not p.is_file():
        raise ModelError(f"{p}: is not a file (expected a Keras 3 .keras file)")
    if p.stat().st_size == 0:
        raise ModelError(f"{p}: empty file (expected a Keras 3 .keras file)")
    if p.suffix.lower() != ".keras":
        raise ModelError(f"{p}: expected a Keras 3 .keras file, got '{p.suffix or 'no suffix'}'")
    try:
        with zipfile.ZipFile(p) as z:
            names = z.namelist()
            if CONFIG_MEMBER not in names:
                raise ModelError(f"{p}: not a Keras 3 .keras file (no {CONFIG_MEMBER} in the archive)")
            bad = z.testzip()  # CRC of every member: catches truncated / corrupted archives
            if bad is not None:
                raise ModelError(f"{p}: corrupt .keras archive (member '{bad}' fails its checksum)")
            config = json.loads(z.read(CONFIG_MEMBER))
    except ModelError:
        raise
    except zipfile.BadZipFile:
        raise ModelError(f"{p}: not a Keras 3 .keras file (not a zip archive, or truncated)") from None
    except (ValueError, UnicodeDecodeError):
        raise ModelError(f"{p}: corrupt .keras archive ({CONFIG_MEMBER} is not valid JSON)") from None
    except (OSError, EOFError, zipfile.LargeZipFile) as exc:
        raise ModelError(f"{p}: corrupt .keras archive ({first_line(exc)})") from None
    if not isinstance(config, dict):
        raise ModelError(f"{p}: corrupt .keras archive ({CONFIG_MEMBER} is not a JSON object)")
    return config


def _layers(node):
    """Every serialized layer dict (class_name + config) in a Keras config tree, nested models included."""
    if isinstance(node, dict):
        if "class_name" in node and isinstance(node.get("config"), dict) and "inbound_nodes" in node:
            yield node
        for v in node.values():
            yield from _layers(v)
    elif isinstance(node, list):
        for v in node:
            yield from _layers(v)


def code_layers(config: dict) -> tuple[list[str], list[str]]:
    """(Lambda layer names, custom layer descriptions) found in a model config."""
    lambdas, custom = [], []
    for layer in _layers(config):
        name = layer.get("name") or layer["config"].get("name") or "?"
        module = layer.get("module") or ""
        if layer["class_name"] == "Lambda":
            lambdas.append(name)
        elif not module.startswith(_KNOWN_MODULE_PREFIXES):
            custom.append(f"{name}' of class '{layer.get('registered_name') or layer['class_name']}")
    return lambdas, custom


def load_keras(path, unsafe: bool = False):
    """Load a ``.keras`` model (compile=False) in Keras safe mode; ModelError with one line otherwise."""
    p = Path(path).expanduser()
    config = read_config(p)
    lambdas, custom = code_layers(config)
    if lambdas and not unsafe:
        raise ModelError(
            f"{p}: needs arbitrary code to load (Lambda layer '{lambdas[0]}'); "
            "pass --unsafe only if you trust this file"
        )
    keras = require("keras", "loading .keras models")
    try:
        import edge_dfd.modelling.models  # noqa: F401  (registers any edge-dfd layers before deserialising)
    except ImportError:
        pass
    try:
        return keras.saving.load_model(str(p), compile=False, safe_mode=not unsafe)
    except Exception as exc:  # Keras raises ValueError, TypeError, KeyError, OSError, h5py errors...
        if custom:
            raise ModelError(
                f"{p}: needs code that is not part of Keras to load (custom layer '{custom[0]}'); "
                "it cannot be loaded or converted by edge-dfd"
            ) from None
        msg = first_line(exc)
        if "arbitrary code" in msg or "safe_mode" in msg:
            raise ModelError(f"{p}: needs arbitrary code to load ({msg[:120]}); "
                             "pass --unsafe only if you trust this file") from None
        raise ModelError(f"{p}: Keras cannot load this model ({msg})") from None


def config_input_size(path) -> int:
    """The square input size S of a ``.keras`` file, read from its config's ``batch_shape`` (no TensorFlow);
    ModelError when the config has none."""
    shape = _find_key(read_config(Path(path)), "batch_shape")
    if not shape or len(shape) != 4 or not shape[1]:
        raise ModelError(f"{path}: cannot read the model's input size from its config")
    return int(shape[1])


def _find_key(node, key):
    """The first value of ``key`` in a nested dict / list tree (depth first), or None."""
    if isinstance(node, dict):
        if key in node:
            return node[key]
        node = list(node.values())
    if isinstance(node, list):
        for v in node:
            found = _find_key(v, key)
            if found is not None:
                return found
    return None


def model_input_size(model) -> int:
    """The square input size S of a model taking (N, S, S, 3); ModelError for anything else."""
    shape = model.input_shape
    if isinstance(shape, list):
        if len(shape) != 1:
            raise ModelError(f"model '{model.name}' has {len(shape)} inputs (expected one image input)")
        shape = shape[0]
    shape = tuple(shape)
    if len(shape) != 4 or shape[3] != 3 or shape[1] is None or shape[1] != shape[2]:
        raise ModelError(f"model '{model.name}' has input shape {shape} (expected (None, S, S, 3))")
    out = tuple(model.output_shape) if not isinstance(model.output_shape, list) else None
    if out is None or out[-1] != 1:
        raise ModelError(f"model '{model.name}' has output shape {model.output_shape} (expected (None, 1) P(fake))")
    return int(shape[1])
