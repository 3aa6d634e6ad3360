"""A self-contained, interactive docs page: it reads ``/schema/openapi.json`` and lets you try each call; and
docstrings (reStructuredText) as the Markdown that OpenAPI's summaries and descriptions are written in.

No external assets (the page works offline and behind strict content policies).
"""

from __future__ import annotations

import html
import inspect
import re

__all__ = ["docs_page", "markdown", "summary_and_description"]

# One pass over the inline markup, so that the output of one rule is never read by another.
_INLINE = re.compile(
    r"``(?P<literal>.+?)``"
    r"|:[\w.+-]+(?::[\w.+-]+)*:`(?P<role>[^`]+)`"
    r"|`(?P<text>[^`<]+?)\s*<(?P<url>[^`>]+)>`__?"
    r"|`(?P<reference>[^`]+)`__?"
    r"|`(?P<interpreted>[^`]+)`"
)
_ROLE_TARGET = re.compile(r"^(?P<text>.*?)\s*<[^>]*>$")
_DIRECTIVE = re.compile(r"^(?P<indent>\s*)\.\. (?P<name>[\w-]+)::\s*(?P<rest>.*)$")


def _code(text: str) -> str:
    return f"`` {text} ``" if "`" in text else f"`{text}`"


def _inline(match: re.Match[str]) -> str:
    found = match.groupdict()
    if found["literal"] is not None:
        return _code(found["literal"])
    if found["role"] is not None:  # :class:`~a.B` is `B`; :ref:`text <target>` is its text
        role = found["role"]
        titled = _ROLE_TARGET.match(role)
        if titled:
            return titled["text"]
        return _code(role[1:].rpartition(".")[2] if role.startswith("~") else role)
    if found["url"] is not None:
        return f"[{found['text']}]({found['url']})"
    if found["reference"] is not None:
        return found["reference"]
    return _code(found["interpreted"])


def markdown(docstring: str) -> str:
    """Return ``docstring`` (reStructuredText, indented as in source) as Markdown: inline literals, roles and
    links rewritten, ``::`` before a literal block made ``:``, directives made bold labels."""
    lines = []
    for line in inspect.cleandoc(docstring).splitlines():
        directive = _DIRECTIVE.match(line)
        if directive:
            label = directive["name"].capitalize()
            line = f"{directive['indent']}**{label}:** {directive['rest']}".rstrip()
        elif line.rstrip().endswith("::"):
            stripped = line.rstrip()[:-2].rstrip()
            line = f"{stripped}:" if stripped else ""
        lines.append(_INLINE.sub(_inline, line))
    return "\n".join(lines)


def summary_and_description(docstring: str) -> tuple[str, str]:
    """Return a docstring's first paragraph as one line of Markdown, and the rest as Markdown ("" if none)."""
    paragraphs = markdown(docstring).split("\n\n", 1)
    summary = " ".join(line.strip() for line in paragraphs[0].splitlines())
    return summary, paragraphs[1].strip("\n") if len(paragraphs) > 1 else ""


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body{{font:15px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:60rem;padding:0 1rem;color:#1d1d1f}}
h1{{font-size:1.6rem}} h2{{font-size:1.1rem;margin-top:2rem;border-bottom:1px solid #ddd}}
details{{border:1px solid #ddd;border-radius:6px;margin:.5rem 0;padding:.4rem .8rem}}
summary{{cursor:pointer}} code,textarea,pre{{font:13px ui-monospace,monospace}}
.m{{display:inline-block;width:3.5rem;font-weight:600}} .post{{color:#0a6}} .get{{color:#06c}}
textarea{{width:100%;height:7rem}} input{{font:13px ui-monospace,monospace;width:18rem}}
pre{{background:#f6f6f6;padding:.6rem;overflow:auto}} button{{margin-top:.4rem}}
</style></head><body>
<h1>{title}</h1>
<p>Every command is <code>POST</code> with a JSON body; every query is <code>GET</code> with parameters.
The raw document: <a href="schema/openapi.json">schema/openapi.json</a>.</p>
<div id="ops">loading…</div>
<script>
const base = location.pathname.replace(/docs\\/?$/, "");
function example(schema, doc) {{
  if (!schema) return null;
  if (schema.$ref) return example(doc.components.schemas[schema.$ref.split("/").pop()], doc);
  if (schema.anyOf) return example(schema.anyOf[0], doc);
  if (schema.type === "object") {{
    const out = {{}};
    for (const [k, v] of Object.entries(schema.properties || {{}})) out[k] = example(v, doc);
    return out;
  }}
  if (schema.type === "array") return [example(schema.items, doc)];
  return {{integer: 0, number: 0, boolean: false, string: ""}}[schema.type] ?? null;
}}
async function call(method, path, form, out) {{
  const headers = {{}};
  let url = base + path.slice(1), body;
  if (method === "post") {{
    headers["content-type"] = "application/json";
    const key = form.querySelector("[name=key]").value;
    if (key) headers["idempotency-key"] = key;
    body = form.querySelector("textarea").value;
  }} else {{
    const params = new URLSearchParams();
    for (const input of form.querySelectorAll("input[data-param]"))
      if (input.value && input.dataset.in === "header") headers[input.dataset.param] = input.value;
      else if (input.value) params.append(input.dataset.param, input.value);
    url += "?" + params;
  }}
  const response = await fetch(url, {{method: method.toUpperCase(), headers, body}});
  const text = await response.text();
  let shown = text;
  try {{ shown = JSON.stringify(JSON.parse(text), null, 2); }} catch (e) {{}}
  out.textContent = response.status + " " + response.statusText + "\\n" + shown;
}}
fetch(base + "schema/openapi.json").then(r => r.json()).then(doc => {{
  const ops = document.getElementById("ops"); ops.textContent = "";
  const byTag = {{}};
  for (const [path, item] of Object.entries(doc.paths))
    for (const [method, op] of Object.entries(item)) (byTag[op.tags[0]] ??= []).push([method, path, op]);
  for (const [tag, list] of Object.entries(byTag)) {{
    const h = document.createElement("h2"); h.textContent = tag; ops.append(h);
    for (const [method, path, op] of list) {{
      const d = document.createElement("details");
      const s = document.createElement("summary");
      s.innerHTML = `<span class="m ${{method}}">${{method.toUpperCase()}}</span><code></code> `;
      s.querySelector("code").textContent = path; s.append(op.summary || "");
      const form = document.createElement("form");
      if (method === "post") {{
        const schema = op.requestBody.content["application/json"].schema;
        form.innerHTML = '<textarea></textarea><br>Idempotency-Key <input name="key">';
        form.querySelector("textarea").value = JSON.stringify(example(schema, doc), null, 2);
      }} else {{
        for (const p of op.parameters) {{
          const label = document.createElement("div");
          label.innerHTML = "<code></code> <input>";
          label.querySelector("code").textContent = p.name + (p.required ? " *" : "");
          label.querySelector("input").dataset.param = p.name;
          label.querySelector("input").dataset.in = p.in;
          form.append(label);
        }}
      }}
      const button = document.createElement("button"); button.textContent = "Send"; form.append(button);
      const out = document.createElement("pre");
      form.onsubmit = e => {{ e.preventDefault(); call(method, path, form, out); }};
      d.append(s, form, out); ops.append(d);
    }}
  }}
}});
</script></body></html>
"""


def docs_page(title: str) -> str:
    """Return the docs page's HTML for an application titled ``title``."""
    return _PAGE.format(title=html.escape(title))
