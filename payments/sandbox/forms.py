"""Stripe's form encoding: ``a[b][c]=v``, ``a[0]=v``, ``a[]=v`` into nested dicts and lists."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl

_KEY = re.compile(r"\[([^\]]*)\]")


class FormError(ValueError):
    pass


def _parts(key: str) -> list[str]:
    i = key.find("[")
    if i < 0:
        return [key]
    head = key[:i]
    rest = key[i:]
    parts = [head]
    pos = 0
    for m in _KEY.finditer(rest):
        if m.start() != pos:
            raise FormError(f"Invalid parameter name: {key}")
        parts.append(m.group(1))
        pos = m.end()
    if pos != len(rest) or not head:
        raise FormError(f"Invalid parameter name: {key}")
    return parts


def _listify(node: Any) -> Any:
    if isinstance(node, dict):
        for k, v in list(node.items()):
            node[k] = _listify(v)
        if node and all(isinstance(k, str) and k.isdigit() for k in node):
            return [node[k] for k in sorted(node, key=int)]
        return node
    if isinstance(node, list):
        return [_listify(v) for v in node]
    return node


def parse_form(body: str) -> dict[str, Any]:
    """Parse a Stripe form body or query string into nested dicts and lists of strings."""
    root: dict[str, Any] = {}
    for key, value in parse_qsl(body, keep_blank_values=True):
        parts = _parts(key)
        node: Any = root
        for idx, part in enumerate(parts):
            last = idx == len(parts) - 1
            if part == "":
                if not isinstance(node, list):
                    raise FormError(f"Invalid parameter name: {key}")
                if last:
                    node.append(value)
                    break
                child: Any = {}
                node.append(child)
                node = child
                continue
            if not isinstance(node, dict):
                raise FormError(f"Invalid parameter name: {key}")
            if last:
                node[part] = value
            else:
                nxt = parts[idx + 1]
                if part not in node or not isinstance(node[part], dict | list):
                    node[part] = [] if nxt == "" else {}
                node = node[part]
    result = _listify(root)
    assert isinstance(result, dict)
    return result
