# SPDX-License-Identifier: LGPL-2.1-or-later
"""The training pipeline of the data-parallel test and benchmark, as the TOML `cxr run` reads:
cxrscansrc over an index CSV, cxrdecode, cxrequalize, cxrblur, a stretch to size x size px, a
queue and cxrtrain. Property and variable values are Python values written as TOML literals; a
string "${name}" takes the pipeline variable `name`.

Import it from a script one folder below tests/:
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
"""
import json


def toml_value(v):
    """A bool, int, float or str as a TOML literal (JSON's string escapes are TOML's)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    raise TypeError(f"no TOML literal for {v!r}")


def training_pipeline(description, variables, scansrc, train, size, queue=None):
    """The pipeline's TOML text. variables, scansrc, train and queue: dicts of name -> value, in
    the order they are written."""
    elements = [("cxrscansrc", scansrc), ("cxrdecode", {}), ("cxrequalize", {}), ("cxrblur", {}),
                ("cxrresize", {"mode": "stretch", "width": size, "height": size}), ("queue", queue or {}),
                ("cxrtrain", train)]
    lines = [f"description = {toml_value(description)}", "[variables]"]
    lines += [f"{k} = {toml_value(v)}" for k, v in variables.items()]
    for factory, props in elements:
        lines += ["", "[[element]]", f"factory = {toml_value(factory)}"]
        lines += [f"{k} = {toml_value(v)}" for k, v in props.items()]
    return "\n".join(lines) + "\n"
