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

// Centre the structure and zoom so that it fills the frame as seen, tilted: NGL's
// autoView sizes an unrotated bounding box without the balls' radii.
function fitView(stage, structure) {
  var box = stage.getBox(), centre = stage.getCenter();
  stage.viewer.rotationGroup.updateMatrix();  // its matrix follows the view's rotation
  var m = stage.viewer.rotationGroup.matrix.elements;  // column-major 4 x 4
  var halfWidth = 0, halfHeight = 0;
  function extend(x, y, z, r) {
    x -= centre.x; y -= centre.y; z -= centre.z;
    halfWidth = Math.max(halfWidth, Math.abs(m[0] * x + m[4] * y + m[8] * z) + r);
    halfHeight = Math.max(halfHeight, Math.abs(m[1] * x + m[5] * y + m[9] * z) + r);
  }
  [box.min, box.max].forEach(function (a) {  // the corners of the box (the cell)
    [box.min, box.max].forEach(function (b) {
      [box.min, box.max].forEach(function (c) { extend(a.x, b.y, c.z, 0); });
    });
  });
  structure.eachAtom(function (a) { extend(a.x, a.y, a.z, a.bfactor); });  // the balls
  var aspect = stage.viewer.width / stage.viewer.height;
  var fov = stage.viewer.perspectiveCamera.fov * Math.PI / 180;
  var half = 1.08 * Math.max(halfHeight, halfWidth / aspect);  // a margin of 8 %
  stage.animationControls.zoomMove(centre, -half / Math.tan(fov / 2), 0);
}

window.renderStructureViews = function () {
  document.querySelectorAll("div.structure-view:not([data-rendered])").forEach(function (el) {
    el.dataset.rendered = "pending";
    // clipDist 0: NGL's autoView (its "r" key) otherwise backs the camera off by a further
    // 10 A, which leaves a unit cell of 8 A in a fifth of the frame
    var stage = new NGL.Stage(el, {backgroundColor: "white", cameraType: "orthographic",
                                   clipDist: 0});
    var blob = new Blob([el.dataset.pdb], {type: "text/plain"});
    var colour = {colorScheme: "element"};
    if (el.dataset.colours) {  // {"K": "purple", ...}: one colour per element
      var pairs = Object.entries(JSON.parse(el.dataset.colours));
      colour = {color: NGL.ColormakerRegistry.addSelectionScheme(
        pairs.map(function (p) { return [p[1], "_" + p[0].toUpperCase()]; }))};
    }
    // inferBonds "none": only the bonds of the file's CONECT records, none guessed from
    // distances (those would join atoms that share no chemical bond)
    stage.loadFile(blob, {ext: "pdb", defaultRepresentation: false, inferBonds: "none"})
      .then(function (c) {
        // balls: the radius is the file's B-factor column (see book/_structure_view.py)
        c.addRepresentation("spacefill", Object.assign({radiusType: "bfactor"}, colour));
        if (c.structure.bondCount > 0) {
          c.addRepresentation("licorice", Object.assign(
            {radiusType: "size", radiusSize: 0.12, multipleBond: "off"}, colour));
        }
        c.addRepresentation("unitcell");  // from the file's CRYST1 record
        stage.viewerControls.spin([0, 1, 0], -Math.PI / 7);  // a tilted view of the cell
        stage.viewerControls.spin([1, 0, 0], Math.PI / 9);
        stage.tasks.onZeroOnce(function () {  // once the representations are built
          fitView(stage, c.structure);
          el.dataset.rendered = "done";
        });
        window.addEventListener("resize", function () {  // a new width of the page
          stage.handleResize();
          fitView(stage, c.structure);
        });
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
