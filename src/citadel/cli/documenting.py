"""``citadel docs``: the module map and a canvas per module, written as Markdown (``citadel.documenter``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from citadel.cli.common import AppArg, application_of, fail, out, settings_of
from citadel.documenter import write_docs
from citadel.errors import CitadelError

__all__ = ["docs"]

OutOpt = Annotated[
    Path, typer.Option("--out", help="folder to write modules.md and a <module>.md per module into (created)")
]


def docs(out_dir: OutOpt, app: AppArg = None) -> None:
    """Write the module map (modules.md, Mermaid) and a canvas per module (<module>.md) into a folder."""
    application = application_of(settings_of(app))
    if out_dir.exists() and not out_dir.is_dir():
        fail(f"--out {out_dir} is a file; pass a folder (it is created if missing)")
    try:
        written = write_docs(application, out_dir)
    except CitadelError as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"cannot write into {out_dir} ({exc.strerror or exc}); pass --out a folder you may write to")
    names = ", ".join(path.name for path in written.pages)
    out.print(f"[green]wrote[/] {len(written.pages)} pages into {escape(str(out_dir))}: {names}", highlight=False)
    if written.svg is not None:
        out.print(f"[green]wrote[/] {escape(str(written.svg))}", highlight=False)
    else:
        out.print(f"modules.svg skipped: {escape(written.svg_skipped or '')}", highlight=False)
