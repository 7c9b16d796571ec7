"""Operator and demo helpers. They share the Lambda layer's plain domain code (tenant role policy, API key
hashing), so the layer's folder is importable here as it is in the functions (/opt/python on Lambda)."""

from __future__ import annotations

import sys
from pathlib import Path

_LAYER = str(Path(__file__).resolve().parents[1] / "layers" / "shared")
if _LAYER not in sys.path:
    sys.path.append(_LAYER)
