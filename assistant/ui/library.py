"""The Documents tab: every document with its type, size, chunks, last indexing and status (with the reason
when it is not indexed as it is); filter and sort; uploads with per-file results; removal that excludes a
document and asks first, deleting a file only when it was uploaded through the chat and the user confirms."""

from __future__ import annotations

import os
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gradio as gr

from ..errors import AssistantError, DocumentError
from ..load.uploads import check_size
from .server import discard_upload

if TYPE_CHECKING:
    from ..app import Assistant
    from ..documents import DocumentStatus

SORTS = {"Name": lambda d: d.path.lower(), "Last indexed": lambda d: d.indexed_at,
         "Size": lambda d: -d.size, "Chunks": lambda d: -d.chunks, "Status": lambda d: (d.status, d.path)}
STATUS_FILTERS = ["All", "Indexed", "Not indexed"]
_LABELS = {"indexed": "indexed", "kept": "failed to parse; previous version kept", "skipped": "skipped",
           "excluded": "excluded"}


class LibraryHandlers:
    def __init__(self, assistant: Assistant) -> None:
        self.a = assistant

    def view(self, query: str = "", status: str = "All", sort: str = "Name", selected: str | None = None
             ) -> tuple[str, Any]:
        """The table (escaped HTML) and the document chooser (keeping `selected` while it is there)."""
        docs = self.a.document_statuses()
        shown = [d for d in docs if _matches(d, query, status)]
        shown.sort(key=SORTS.get(sort, SORTS["Name"]))
        paths = [d.path for d in docs]
        return _table(shown, len(docs)), gr.update(choices=paths, value=selected if selected in paths else None)

    def add_files(self, paths: list[str] | None, query: str, status: str, sort: str,
                  progress: gr.Progress = gr.Progress()  # noqa: B008
                  ) -> tuple[Any, ...]:
        files, lines = [], []
        for i, path in enumerate(paths or []):
            name = Path(path).name
            progress((i, len(paths or [])), desc=f"reading {name}")
            try:
                check_size(name, os.path.getsize(path), self.a.settings.max_upload_mb)
                files.append((name, Path(path).read_bytes()))
            except DocumentError as e:
                lines.append(("error", f"Not added: {e}"))
            except OSError as e:
                lines.append(("error", f"Not added: {name}: {e.strerror or type(e).__name__}; upload it again"))
            finally:
                discard_upload(path)  # Gradio's copy: the documents folder now holds the only one
        if not paths:
            lines.append(("error", "Choose one or more files first."))
        if files:
            try:
                up = self.a.add_documents(files, progress=_progress_callback(progress))
            except AssistantError as e:
                lines.append(("error", f"Indexing failed: {e}"))
            else:
                chunks = {d.path: d.chunks for d in self.a.documents()}
                built = up.build
                for sv in up.saved:
                    if sv.duplicate and "indexed again" not in sv.note:
                        lines.append(("info", sv.note))
                    elif built is not None and sv.name in (*built.added, *built.changed, *built.unchanged):
                        extra = f" ({sv.note})" if sv.note else ""
                        lines.append(("ok", f"Added {sv.name}: {chunks.get(sv.name, 0)} passages indexed{extra}"))
                lines += [("error", f"Not added: {r}") for r in up.rejected]
        return (_status(lines), None, *self.view(query, status, sort))

    def ask_remove(self, source: str | None) -> tuple[Any, ...]:
        """The confirmation box for removing `source`: what will happen, and the delete option when allowed."""
        if not source:
            return (gr.update(visible=False), _status([("error", "Choose a document first.")]), gr.skip(),
                    gr.skip())
        deletable = self.a.deletable(source)
        text = (f"<p>Remove <b>{escape(source)}</b> from the index? Its file stays in the documents folder and "
                "is not indexed again until you include it.</p>")
        if not deletable:
            text += ("<p class=\"info\">The file cannot be deleted from here: only files uploaded through the "
                     "chat, unchanged since, can be.</p>")
        label = "Also delete the file from the documents folder (it was uploaded through the chat)"
        return (gr.update(visible=True), "", text,
                gr.update(value=False, interactive=deletable, visible=deletable, label=label))

    def remove(self, source: str | None, delete: bool, query: str, status: str, sort: str) -> tuple[Any, ...]:
        if not source:
            return (_status([("error", "Choose a document first.")]), gr.update(visible=False),
                    *self.view(query, status, sort))
        try:
            self.a.remove_document(source, delete_file=bool(delete))
            line = ("ok", f"Deleted {source}: removed from the index and the folder." if delete else
                    f"Removed {source} from the index; the file stays in the documents folder (excluded).")
        except AssistantError as e:
            line = ("error", str(e))
        return (_status([line]), gr.update(visible=False), *self.view(query, status, sort, source))

    def include(self, source: str | None, query: str, status: str, sort: str) -> tuple[Any, ...]:
        return self._run(source, self.a.include_document, "Included {} again", query, status, sort)

    def reindex(self, source: str | None, query: str, status: str, sort: str) -> tuple[Any, ...]:
        return self._run(source, self.a.reindex_document, "Looked at {} again", query, status, sort)

    def _run(self, source: str | None, fn: Any, done: str, query: str, status: str, sort: str) -> tuple[Any, ...]:
        if not source:
            return (_status([("error", "Choose a document first.")]), *self.view(query, status, sort))
        try:
            report = fn(source)
            line = ("ok", f"{done.format(source)}: {report.summary()}")
            line = line if not any(sk.rel == source for sk in report.skipped) else \
                ("error", next(f"{source}: {sk.reason}" for sk in report.skipped if sk.rel == source))
        except AssistantError as e:
            line = ("error", str(e))
        return (_status([line]), *self.view(query, status, sort, source))


def _matches(d: DocumentStatus, query: str, status: str) -> bool:
    if status == "Indexed" and d.status not in ("indexed", "kept"):
        return False
    if status == "Not indexed" and d.status == "indexed":
        return False
    q = (query or "").strip().lower()
    return not q or q in d.path.lower() or q in d.title.lower() or q in d.kind


def _table(docs: list[DocumentStatus], total: int) -> str:
    if not docs:
        return f'<p class="empty">No documents match ({total} in all).</p>'
    rows = []
    for d in docs:
        state = _LABELS.get(d.status, d.status)
        reason = f'<div class="reason">{escape(d.reason)}</div>' if d.reason else ""
        rows.append(f'<tr class="st-{d.status}"><td class="path">{escape(d.path)}</td><td>{escape(d.title)}</td>'
                    f'<td>{escape(d.kind)}</td><td class="num">{_size(d.size)}</td><td class="num">{d.chunks}</td>'
                    f'<td>{escape(_short_time(d.indexed_at))}</td><td class="status">{escape(state)}{reason}</td></tr>')
    head = "".join(f"<th>{h}</th>" for h in ("Document", "Title", "Type", "Size", "Passages", "Last indexed",
                                              "Status"))
    return (f'<p class="count">{len(docs)} of {total} documents</p><div class="table-wrap"><table class="docs">'
            f'<thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table></div>')


def _size(n: int) -> str:
    if n >= 1024 * 1024:
        return f"{n / 1024 / 1024:.1f} MB"
    return f"{n / 1024:.1f} KB" if n >= 1024 else f"{n} B"


def _short_time(iso: str) -> str:
    """'2026-01-02T03:04:05+00:00' -> '2026-01-02 03:04:05 UTC'; other offsets are kept as they are."""
    if iso.endswith(("+00:00", "Z")):
        return iso.replace("T", " ")[:19] + " UTC"
    return iso.replace("T", " ")


def _status(lines: list[tuple[str, str]]) -> str:
    icons = {"ok": "✓", "error": "⚠", "info": "ℹ"}
    return "".join(f'<p class="{kind}">{icons[kind]} {escape(text)}</p>' for kind, text in lines)


def _progress_callback(progress: Any) -> Any:
    def report(stage: str, done: int, total: int, item: str = "") -> None:
        progress((done, total) if total else None, desc=f"{stage} {item}".strip())

    return report
