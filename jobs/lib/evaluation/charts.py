"""Figures for the HTML reports (evaluation and experiments): a matplotlib figure as an inline PNG."""
from __future__ import annotations

import base64
import io


def png_base64(figure) -> str:
    """The figure as base64 PNG, for `<img src="data:image/png;base64,...">` (a report is one file)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode()
