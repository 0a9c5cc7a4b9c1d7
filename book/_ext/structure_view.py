"""Serve nglview's molecular viewer (NGL) from the built book, for offline structure views.

An nglview widget needs a live kernel, or an HTML embedding whose widget manager comes
from a CDN: in an offline book it draws nothing. The NGL library that nglview's widget
bundles (its notebook extension, ``nglview-js-widgets/index.js``) is all a static view
needs, so this extension copies that bundle into ``_static/nglview/``, exposes the NGL
module it contains as ``window.NGL``, and adds ``renderStructureViews()``, which draws
every ``<div class="structure-view" data-pdb="..." data-colours="...">`` of a page (see
``book/_structure_view.py``).
"""

from __future__ import annotations

import re
from pathlib import Path

from jupyter_core.paths import jupyter_path

BUNDLE = Path("nglview-js-widgets") / "index.js"

# nglview's bundle is an AMD module needing "@jupyter-widgets/base"; at load time it only
# subclasses DOMWidgetModel and DOMWidgetView, so two empty classes stand in for them.
PRELUDE = """/* NGL from nglview's notebook bundle, for static pages (see structure_view.py) */
(function () {
var factory = null;
function define(deps, f) { factory = f; }
"""
POSTLUDE = """
var stub = {DOMWidgetModel: class { defaults() { return {}; } }, DOMWidgetView: class {}};
window.NGL = factory(stub).NGL;
})();

window.renderStructureViews = function () {
  document.querySelectorAll("div.structure-view:not([data-rendered])").forEach(function (el) {
    el.dataset.rendered = "pending";
    var stage = new NGL.Stage(el, {backgroundColor: "white", cameraType: "orthographic"});
    var blob = new Blob([el.dataset.pdb], {type: "text/plain"});
    var style = {colorScheme: "element", radiusScale: 1.2};
    if (el.dataset.colours) {  // {"K": "purple", ...}: one colour per element
      var pairs = Object.entries(JSON.parse(el.dataset.colours));
      style.color = NGL.ColormakerRegistry.addSelectionScheme(
        pairs.map(function (p) { return [p[1], "_" + p[0].toUpperCase()]; }));
      delete style.colorScheme;
    }
    stage.loadFile(blob, {ext: "pdb", defaultRepresentation: false}).then(function (c) {
      c.addRepresentation("ball+stick", style);
      c.addRepresentation("unitcell");
      stage.autoView();
      el.dataset.rendered = "done";
    });
  });
};
"""


def _bundle() -> Path:
    for root in jupyter_path("nbextensions"):
        path = Path(root) / BUNDLE
        if path.is_file():
            return path
    raise RuntimeError(
        "nglview's notebook bundle (nglview-js-widgets/index.js) was not found in the "
        "Jupyter data paths: install the book extra, pip install -e '.[book]'"
    )


def _patched(source: str) -> str:
    """The bundle, returning its NGL module beside its widget classes."""
    ngl = re.search(r"NGL=__webpack_require__\((\d+)\)", source)
    anchor = re.search(r"var __webpack_exports__=__webpack_require__\((\d+)\);", source)
    if ngl is None or anchor is None:
        raise RuntimeError("unexpected nglview bundle layout: cannot find its NGL module")
    insert = f"__webpack_exports__.NGL=__webpack_require__({ngl.group(1)});"
    return source[: anchor.end()] + insert + source[anchor.end():]


def _write(app, exception) -> None:
    if exception is not None or app.builder.format != "html":
        return
    target = Path(app.outdir) / "_static" / "nglview" / "ngl.js"
    target.parent.mkdir(parents=True, exist_ok=True)
    source = _bundle().read_text(encoding="utf-8")
    source = source.replace("//# sourceMappingURL=index.js.map", "")
    target.write_text(PRELUDE + _patched(source) + POSTLUDE, encoding="utf-8")


def setup(app):
    _patched(_bundle().read_text(encoding="utf-8"))  # fail early, before executing pages
    app.connect("build-finished", _write)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
