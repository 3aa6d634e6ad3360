"""Module documentation generated from an application: a module map and a canvas per module.

    citadel docs examples.shop:app --out docs/modules

The map (``modules.md``) is a Mermaid flowchart of the modules, their declared dependencies and the messages
between them; each canvas (``<module>.md``) lists a module's commands, queries, events published and listened
to, views, dependencies, process managers and projections, with summaries and fields. The output is sorted, so
it can be committed and diffed: running it twice writes the same files.

``model`` builds what the pages show; ``facts`` is the one place that reads how the application bound its
projections, views and process managers.
"""

from __future__ import annotations

from citadel.documenter.model import AppDoc, document
from citadel.documenter.writing import Written, pages, write_docs

__all__ = ["AppDoc", "Written", "document", "pages", "write_docs"]
