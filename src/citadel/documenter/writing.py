"""Writing an application's module documentation into a folder: the map, a canvas per module, and the map as
SVG when a Mermaid renderer (``mmdc``, the Mermaid CLI) is on the path."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from citadel.documenter.canvas import canvas
from citadel.documenter.map import mermaid, module_map
from citadel.documenter.model import document
from citadel.documenter.text import MAP_PAGE, page_of

if TYPE_CHECKING:
    from citadel.app import Application

__all__ = ["RENDERER", "SVG", "Written", "pages", "write_docs"]

RENDERER = "mmdc"
"""The Mermaid CLI, the renderer of the SVG map (``npm install -g @mermaid-js/mermaid-cli``)."""

SVG = "modules.svg"
"""The file name of the map as SVG."""

_RENDER_TIMEOUT = 120.0


@dataclass(frozen=True)
class Written:
    """What ``write_docs`` wrote: the Markdown pages, and the SVG map or why it was skipped."""

    pages: tuple[Path, ...]
    svg: Path | None
    svg_skipped: str | None


def pages(app: Application) -> dict[str, str]:
    """Return the module documentation of ``app`` by file name: the map, then a canvas per module.

    Raises:
        ConfigurationError: a module's name could not be a file name.
    """
    doc = document(app)
    found = {MAP_PAGE: module_map(doc)}
    found.update({page_of(module.name): canvas(module, doc) for module in doc.modules})
    return found


def write_docs(app: Application, out: Path, *, renderer: str | None = RENDERER) -> Written:
    """Write ``app``'s module documentation into ``out`` (created if missing), replacing pages of the same name,
    and the SVG map when ``renderer`` is on the path (None: never). Returns what was written.

    Raises:
        OSError: ``out`` cannot be created or written.
        ConfigurationError: a module's name could not be a file name.
    """
    written = pages(app)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, text in sorted(written.items()):
        path = out / name
        path.write_text(text, encoding="utf-8")
        paths.append(path)
    found = shutil.which(renderer) if renderer else None
    if found is None:
        reason = f"{renderer} (the Mermaid CLI) is not on PATH" if renderer else "no renderer was asked for"
        return Written(tuple(paths), None, reason)
    problem = _render(found, mermaid(document(app)), out / SVG)
    return Written(tuple(paths), None if problem else out / SVG, problem)


def _render(renderer: str, source: str, target: Path) -> str | None:
    """Render Mermaid ``source`` to ``target`` with ``renderer``; return why it failed, or None."""
    with tempfile.TemporaryDirectory() as folder:
        diagram = Path(folder) / "modules.mmd"
        diagram.write_text(source, encoding="utf-8")
        try:
            done = subprocess.run(  # noqa: S603 - the renderer found on PATH, fixed arguments, no shell
                [renderer, "--input", str(diagram), "--output", str(target)],
                capture_output=True,
                text=True,
                timeout=_RENDER_TIMEOUT,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"{RENDERER} failed: {exc}"
    if done.returncode != 0:
        first = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[0]
        return f"{RENDERER} failed: {first}"
    return None
