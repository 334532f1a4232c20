"""The HTML, CSS and script of the inspect report (``html.py`` fills it in): plain HTML that renders without the
script, and a small inline script for the filters (also read from the URL hash), the lightbox and the load marks.

The script sets ``data-loaded`` on each tile to its thumbnail's natural width once the image loads (0 when it
failed) and ``data-ready`` on the body, so a headless browser's DOM dump shows what rendered. It reads shard data
only from attributes and never writes HTML.
"""

from __future__ import annotations

__all__ = ["render_page"]

_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title><!--title--></title>
<style>
body { background: #161616; color: #e8e8e8; font: 15px/1.4 system-ui, sans-serif; margin: 0 16px 32px; }
h1 { font-size: 20px; margin: 12px 0 4px; } h2 { font-size: 17px; margin: 24px 0 8px; }
.bar { position: sticky; top: 0; background: #161616; padding: 8px 0; z-index: 2; border-bottom: 1px solid #333; }
.bar label { margin-right: 14px; } select { font-size: 14px; background: #222; color: #eee; border: 1px solid #555; }
#shown { color: #aaa; margin-left: 8px; }
.legend { font-size: 13px; color: #ccc; line-height: 1.8; } .sw { margin-right: 10px; white-space: nowrap; }
.sw i { display: inline-block; width: 12px; height: 12px; margin-right: 4px; vertical-align: -1px;
  border: 1px solid #999; }
.gallery { display: grid; grid-template-columns: repeat(auto-fill, minmax(520px, 1fr)); gap: 12px; margin-top: 12px; }
.tile { margin: 0; background: #222; border: 2px solid #333; border-radius: 4px; padding: 6px; }
.tile.flagged { border-color: #d9534f; } .tile.passed { border-color: #3c8d3c; }
.tile img { display: block; width: 100%; height: auto; min-height: 40px; background: #000; }
.tile[hidden] { display: none; }
.key { font-weight: 600; word-break: break-all; } .meta, .prod { color: #bbb; font-size: 13px; }
.flagged .status { color: #ff8a7a; font-weight: 600; } .passed .status { color: #8fd88f; }
.reasons { margin: 4px 0 0; padding-left: 18px; color: #ffb3a8; font-size: 13px; }
table { border-collapse: collapse; font-size: 13px; } td, th { border: 1px solid #444; padding: 3px 6px;
  text-align: left; vertical-align: top; }
#lightbox { position: fixed; inset: 0; background: rgba(0,0,0,.9); display: none; z-index: 5; overflow: auto;
  cursor: zoom-out; } #lightbox.open { display: block; } #lightbox img { display: block; margin: 12px auto;
  max-width: 98vw; }
</style></head>
<body>
<h1><!--title--></h1>
<p><!--counts--></p>
<!--legend-->
<div class="bar"><!--filters--><span id="shown"></span></div>
<div class="gallery" id="gallery">
<!--tiles-->
</div>
<h2>Build failures</h2>
<!--failures-->
<!--problems-->
<div id="lightbox"><img alt="full-size overlays"></div>
<script>
(function () {
  "use strict";
  var tiles = Array.prototype.slice.call(document.querySelectorAll(".tile"));
  var selects = Array.prototype.slice.call(document.querySelectorAll("select[data-filter]"));
  function tokens(tile, name) { return (tile.getAttribute("data-" + name) || "").split(" "); }
  function matches(tile, f) {
    if (f.flag === "any" && tile.getAttribute("data-status") !== "flagged") return false;
    if ((f.flag === "passed" || f.flag === "unchecked") && tile.getAttribute("data-status") !== f.flag) return false;
    if (f.flag && ["any", "passed", "unchecked"].indexOf(f.flag) < 0 && tokens(tile, "flags").indexOf(f.flag) < 0)
      return false;
    if (f.category && tokens(tile, "category").indexOf(f.category) < 0) return false;
    if (f.producer && tokens(tile, "producers").indexOf(f.producer) < 0) return false;
    if (f.pair && tokens(tile, "pair").indexOf(f.pair) < 0) return false;
    return true;
  }
  function fromHash() {
    var f = {};
    location.hash.replace(/^#/, "").split("&").forEach(function (part) {
      var kv = part.split("=");
      if (kv.length !== 2 || !kv[0]) return;
      // a malformed escape (a lone %) throws URIError: that part filters nothing, the rest of the page still runs
      try { f[decodeURIComponent(kv[0])] = decodeURIComponent(kv[1]); } catch (e) { /* no filter */ }
    });
    return f;
  }
  function apply() {
    var f = fromHash(), shown = 0;
    selects.forEach(function (s) {
      var want = f[s.getAttribute("data-filter")] || "";
      var known = Array.prototype.some.call(s.options, function (o) { return o.value === want; });
      s.value = known ? want : "";
      if (!known && want) { var o = document.createElement("option"); o.value = want; o.textContent = want + " (0)";
        s.appendChild(o); s.value = want; }
    });
    tiles.forEach(function (t) { var ok = matches(t, f); t.hidden = !ok; if (ok) shown++; });
    document.getElementById("shown").textContent = shown + " of " + tiles.length + " samples shown";
    document.body.setAttribute("data-shown", String(shown));
  }
  selects.forEach(function (s) {
    s.addEventListener("change", function () {
      var parts = [];
      selects.forEach(function (x) { if (x.value) parts.push(x.getAttribute("data-filter") + "=" +
        encodeURIComponent(x.value)); });
      location.hash = parts.join("&");
    });
  });
  window.addEventListener("hashchange", apply);
  var box = document.getElementById("lightbox"), big = box.querySelector("img");
  box.addEventListener("click", function () { box.className = ""; big.removeAttribute("src"); });
  tiles.forEach(function (t) {
    var a = t.querySelector("a.open"), img = t.querySelector("img");
    a.addEventListener("click", function (ev) { ev.preventDefault(); big.src = a.getAttribute("href");
      box.className = "open"; });
    function mark() { t.setAttribute("data-loaded", String(img.naturalWidth)); }
    if (img.complete) mark(); else { img.addEventListener("load", mark); img.addEventListener("error", mark); }
  });
  apply();
  window.addEventListener("load", function () {
    tiles.forEach(function (t) { t.setAttribute("data-loaded", String(t.querySelector("img").naturalWidth)); });
    document.body.setAttribute("data-ready", "1");
  });
})();
</script>
</body></html>
"""


def render_page(**parts: str) -> str:
    """The page with each ``<!--name-->`` replaced by ``parts[name]`` (already escaped HTML)."""
    page = _PAGE
    for name, value in parts.items():
        page = page.replace(f"<!--{name}-->", value)
    return page
