/* gridmap.js: draws gridmap's hotspot, workload and plan-comparison maps from one JSON
 * payload (see maps/common.py). No network access: everything comes from the page.
 * window.gridmapState exposes what is drawn, for tests and for the curious. */
(function () {
  "use strict";

  /* Coordinates are integers at 10^dec (dec = 6 unless a layer lists "dec" per feature:
   * features that need more decimals to stay intact, see maps/geometry.py); the layer
   * origin "o" is in units of 1e-6 degrees. Literal powers: Math.pow may be inexact. */
  var POW10 = [1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12];

  function esc(text) {
    return String(text === undefined || text === null ? "" : text)
      .replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")
      .replace(/"/g, "&quot;").replace(/'/g, "&#39;");
  }

  function ring(a, o, dec) {
    var scale = POW10[dec], k = POW10[dec - 6];
    var x = o[0] * k, y = o[1] * k, out = new Array(a.length / 2);
    for (var i = 0, j = 0; i < a.length; i += 2, j++) {
      x += a[i]; y += a[i + 1];
      out[j] = [y / scale, x / scale];
    }
    return out;
  }

  function decimals(layer, i) { return layer.dec ? layer.dec[i] : 6; }

  function polygonLatLngs(layer, i) {
    var dec = decimals(layer, i);
    return layer.g[i].map(function (poly) {
      return poly.map(function (r) { return ring(r, layer.o, dec); });
    });
  }

  function lineLatLngs(layer, i) {
    var dec = decimals(layer, i);
    return layer.g[i].map(function (l) { return ring(l, layer.o, dec); });
  }

  function fmt(n) { return Number(n).toLocaleString("zh-CN"); }

  function moveIntoControl(map, id, position) {
    var el = document.getElementById(id);
    if (!el) { return null; }
    var Ctl = L.Control.extend({
      onAdd: function () {
        L.DomEvent.disableClickPropagation(el);
        L.DomEvent.disableScrollPropagation(el);
        return el;
      }
    });
    new Ctl({ position: position }).addTo(map);
    el.style.display = "";
    return el;
  }

  function setLegend(title, rows, note) {
    var el = document.getElementById("gm-legend");
    if (!el) { return; }
    var html = '<div class="gm-legend-title">' + esc(title) + '</div><div class="gm-legend-rows">';
    rows.forEach(function (r) {
      html += '<div class="gm-legend-row"><i style="background:' + esc(r[0]) + '"></i><span>' +
        esc(r[1]) + "</span></div>";
    });
    html += "</div>";
    if (note) { html += '<div class="gm-legend-note">' + esc(note) + "</div>"; }
    el.innerHTML = html;
  }

  function teamHtml(team) {
    if (!team || !team.length) { return ""; }
    return team.map(function (r) {
      return "<tr><th>" + esc(r[0]) + "</th><td>" + esc(r[1]) + "</td></tr>";
    }).join("");
  }

  function gridHeader(G, i) {
    var name = G.name[i] ? " " + esc(G.name[i]) : "";
    return '<div class="gm-popup"><b>' + esc(G.code[i]) + name + "</b>" +
      '<table><tr><th>社区</th><td>' + esc(G.community[i]) + "</td></tr>" + teamHtml(G.team[i]);
  }

  /* Leaflet credit without an outbound link: the page may live on an isolated network. */
  var PREFIX = "Leaflet";

  /* Base layers shared by every map: tiles (if any), grids, boundaries and roads. */
  function base(map, D, gridStyle) {
    map.attributionControl.setPrefix(PREFIX);
    var canvas = L.canvas({ padding: 0.3 });
    var baseLayers = {}, overlays = {};
    (D.basemap || []).forEach(function (t) {
      var layer = L.tileLayer(t.url, {
        subdomains: t.subdomains, attribution: esc(t.attribution), maxZoom: 18
      });
      if (t.overlay) { overlays[t.name] = layer; } else { baseLayers[t.name] = layer; }
      layer.addTo(map);
    });
    var G = D.grids;
    var grids = L.featureGroup();
    var shapes = G.g.map(function (f, i) {
      var p = L.polygon(polygonLatLngs(G, i), L.extend({ className: "gm-grid" }, gridStyle(i)));
      p._gmIndex = i;
      p.addTo(grids);
      return p;
    });
    grids.addTo(map);
    overlays["网格"] = grids;
    var outline = function (key, label, style) {
      var lay = D[key];
      if (!lay) { return; }
      var group = L.layerGroup();
      lay.g.forEach(function (_, i) {
        var opts = L.extend({ renderer: canvas, interactive: false, fill: false }, style);
        L.polyline(lineLatLngs(lay, i), opts).addTo(group);
      });
      group.addTo(map);
      overlays[label] = group;
    };
    outline("roads", "道路", { color: "#9e9e9e", weight: 1.2, opacity: 0.8 });
    outline("communities", "社区边界", { color: "#37474f", weight: 2, opacity: 0.9 });
    outline("streets", "街道边界", { color: "#111", weight: 3.5, opacity: 0.9 });
    map.fitBounds(D.bounds);
    return { grids: grids, shapes: shapes, baseLayers: baseLayers, overlays: overlays, canvas: canvas };
  }

  function layerControl(map, b) {
    return L.control.layers(b.baseLayers, b.overlays, { collapsed: false, position: "topright" })
      .addTo(map);
  }

  /* ---- hotspots ------------------------------------------------------------------- */

  function quantileBreaks(values, k) {
    // Same as numpy.percentile (linear) at 100/k steps, de-duplicated: mapclassify.Quantiles.
    var v = Array.prototype.slice.call(values).sort(function (a, b) { return a - b; });
    var n = v.length, out = [];
    if (!n) { return [0]; }
    for (var j = 1; j <= k; j++) {
      var p = (j / k) * (n - 1), lo = Math.floor(p), hi = Math.min(lo + 1, n - 1);
      var q = v[lo] + (v[hi] - v[lo]) * (p - lo);
      if (!out.length || q !== out[out.length - 1]) { out.push(q); }
    }
    return out;
  }

  function classOf(value, breaks) {
    for (var i = 0; i < breaks.length; i++) { if (value <= breaks[i]) { return i; } }
    return breaks.length - 1;
  }

  function breakRows(breaks, colors) {
    var rows = [], lo = 0;
    breaks.forEach(function (b, i) {
      var hi = Math.floor(b);
      var label = lo >= hi ? String(hi) : lo + "–" + hi;
      rows.push([colors[i], label + " 件"]);
      lo = hi + 1;
    });
    return rows;
  }

  function classColors(nClasses, palette) {
    // Spread the palette over the classes actually present.
    if (nClasses >= palette.length) { return palette.slice(); }
    var out = [];
    for (var i = 0; i < nClasses; i++) {
      out.push(palette[Math.round(i * (palette.length - 1) / Math.max(1, nClasses - 1))]);
    }
    return out;
  }

  function hotspots(map, D) {
    var R = D.reports, G = D.grids, nG = G.code.length, nC = D.categories.length;
    var n = R.c.length;
    var lat = new Float64Array(n), lng = new Float64Array(n);
    var x = R.o[0], step = R.scale;
    for (var i = 0; i < n; i++) {
      x += R.x[i];
      lng[i] = x / step;
      lat[i] = (R.o[1] + R.y[i]) / step;
    }
    var state = {
      kind: "hotspots", counts: new Int32Array(nG), byCat: new Int32Array(nG * nC),
      drawn: 0, breaks: D.classes.breaks.slice(), colors: D.classes.colors.slice()
    };
    window.gridmapState = state;
    var styleOf = function (i) {
      var c = state.colors[classOf(state.counts[i], state.breaks)];
      return { color: "#555", weight: 0.6, opacity: 0.9, fillColor: c, fillOpacity: 0.45 };
    };
    var b = base(map, D, function () { return { color: "#555", weight: 0.6, fillOpacity: 0.55 }; });
    var heat = L.heatLayer([], {
      radius: 14, blur: 16, maxZoom: 17, minOpacity: 0.05
    }).addTo(map);
    b.overlays["热力图"] = heat;
    var cluster = null, clusterOn = false;
    if (L.markerClusterGroup) {
      cluster = L.markerClusterGroup({ chunkedLoading: true, disableClusteringAtZoom: 19,
        showCoverageOnHover: false });
      b.overlays["案件点（聚合）"] = cluster;
    }
    layerControl(map, b);

    var form = moveIntoControl(map, "gm-filters", "topleft");
    var catSel = document.getElementById("gm-f-category");
    var subSel = document.getElementById("gm-f-subcategory");
    var fromIn = document.getElementById("gm-f-from");
    var toIn = document.getElementById("gm-f-to");
    var statusBoxes = form ? form.querySelectorAll("input[name=status]") : [];

    // leaflet.heat saturates a cell at `max`; scale it to the mean cell intensity over the
    // district at the opening zoom, so 1,000 and 100,000 reports both show their hotspots.
    var heatZoom = map.getZoom();
    var districtPx = (function () {
      var a = map.latLngToContainerPoint(D.bounds[0]), c = map.latLngToContainerPoint(D.bounds[1]);
      return Math.max(1, Math.abs((c.x - a.x) * (c.y - a.y)));
    })();
    function heatMax(count) {
      var r = 14 + 16, cell = (r / 2) * (r / 2);
      var f = 1 / Math.pow(2, Math.max(0, Math.min(17 - heatZoom, 12)));
      return Math.max(0.05, 4 * count * f * cell / districtPx);
    }

    function dayOf(value) {
      if (!value) { return null; }
      var p = value.split("-");
      return Math.round(Date.UTC(+p[0], +p[1] - 1, +p[2]) / 864e5) - R.day0;
    }

    function currentFilter() {
      var allowed = new Uint8Array(D.statuses.length);
      Array.prototype.forEach.call(statusBoxes, function (box) {
        if (box.checked) { allowed[+box.value] = 1; }
      });
      return {
        cat: catSel && catSel.value !== "" ? +catSel.value : -1,
        sub: subSel && subSel.value !== "" ? +subSel.value : -1,
        from: fromIn ? dayOf(fromIn.value) : null,
        to: toIn ? dayOf(toIn.value) : null,
        statuses: allowed
      };
    }

    function passes(f, j) {
      return (f.cat < 0 || R.c[j] === f.cat) && (f.sub < 0 || R.s[j] === f.sub) &&
        f.statuses[R.t[j]] === 1 && (f.from === null || R.d[j] >= f.from) &&
        (f.to === null || R.d[j] <= f.to);
    }

    function rebuildCluster(f) {
      if (!cluster || !clusterOn) { return; }
      cluster.clearLayers();
      var markers = [];
      for (var j = 0; j < n; j++) {
        if (!passes(f, j)) { continue; }
        var mk = L.circleMarker([lat[j], lng[j]], { radius: 5, weight: 1, color: "#b71c1c",
          fillColor: "#ef5350", fillOpacity: 0.8 });
        mk._gmIndex = j;
        mk.bindPopup(reportPopup);
        markers.push(mk);
      }
      cluster.addLayers(markers);
    }

    function reportPopup(layer) {
      var j = layer._gmIndex, sub = D.subcategories[R.s[j]];
      var day = new Date((R.d[j] + R.day0) * 864e5).toISOString().slice(0, 10);
      return '<div class="gm-popup"><b>' + esc(D.categories[R.c[j]][1]) + "</b><table>" +
        "<tr><th>小类</th><td>" + esc(sub ? sub[1] : "") + "</td></tr>" +
        "<tr><th>状态</th><td>" + esc(D.statuses[R.t[j]][1]) + "</td></tr>" +
        "<tr><th>日期</th><td>" + esc(day) + "</td></tr></table></div>";
    }

    function apply(reclass) {
      var f = currentFilter(), pts = [];
      state.counts.fill(0);
      state.byCat.fill(0);
      for (var j = 0; j < n; j++) {
        if (!passes(f, j)) { continue; }
        pts.push([lat[j], lng[j]]);
        var g = R.g[j];
        if (g >= 0) { state.counts[g]++; state.byCat[g * nC + R.c[j]]++; }
      }
      state.drawn = pts.length;
      heat.setOptions({ max: heatMax(pts.length) });
      heat.setLatLngs(pts);
      if (reclass) {
        state.breaks = quantileBreaks(state.counts, D.classes.k);
        state.colors = classColors(state.breaks.length, D.classes.palette);
      }
      b.shapes.forEach(function (p, i) { p.setStyle(styleOf(i)); });
      setLegend(D.legendTitle, breakRows(state.breaks, state.colors),
        "共 " + fmt(state.drawn) + " 件（" + D.classes.scheme + "）");
      state.filter = f;
      rebuildCluster(f);
    }

    function fillSubcategories() {
      if (!subSel) { return; }
      var cat = catSel && catSel.value !== "" ? +catSel.value : -1, keep = subSel.value;
      subSel.innerHTML = '<option value="">全部小类</option>';
      D.subcategories.forEach(function (s, i) {
        if (cat < 0 || s[2] === cat) {
          var o = document.createElement("option");
          o.value = String(i); o.textContent = s[1];
          subSel.appendChild(o);
        }
      });
      subSel.value = keep;
      if (subSel.value !== keep) { subSel.value = ""; }
    }

    map.on("overlayadd", function (e) {
      if (e.layer === cluster) { clusterOn = true; rebuildCluster(state.filter); }
    });
    map.on("overlayremove", function (e) { if (e.layer === cluster) { clusterOn = false; } });

    b.shapes.forEach(function (p, i) {
      p.bindPopup(function () {
        var html = gridHeader(G, i) + "<tr><th>案件</th><td>" + fmt(state.counts[i]) + " 件</td></tr>";
        var rows = [];
        for (var c = 0; c < nC; c++) {
          var v = state.byCat[i * nC + c];
          if (v) { rows.push([v, D.categories[c][1]]); }
        }
        rows.sort(function (a, bb) { return bb[0] - a[0]; });
        rows.forEach(function (r) {
          html += '<tr class="gm-cat"><th>' + esc(r[1]) + "</th><td>" + fmt(r[0]) + "</td></tr>";
        });
        return html + "</table></div>";
      });
    });

    if (form) {
      form.addEventListener("change", function (e) {
        if (e.target === catSel) { fillSubcategories(); }
        apply(true);
      });
      form.addEventListener("submit", function (e) { e.preventDefault(); });
      var reset = document.getElementById("gm-f-reset");
      if (reset) {
        reset.addEventListener("click", function () {
          catSel.value = ""; fillSubcategories(); subSel.value = "";
          fromIn.value = ""; toIn.value = "";
          Array.prototype.forEach.call(statusBoxes, function (box) { box.checked = true; });
          apply(true);
        });
      }
      fillSubcategories();
      var pre = D.preselect || {};
      if (pre.subcategory !== undefined && pre.subcategory !== null) {
        subSel.value = String(pre.subcategory);
      }
    }
    apply(false);
    state.ready = true;
  }

  /* ---- workload -------------------------------------------------------------------- */

  /* Class of a case figure: the first class whose (exclusive) upper break it is below,
   * the last class above every break, -1 without a figure. */
  function caseClass(spec, v) {
    if (v === null || v === undefined) { return -1; }
    for (var k = 0; k < spec.breaks.length; k++) { if (v < spec.breaks[k]) { return k; } }
    return spec.breaks.length;
  }

  function caseRows(C, i) {
    var dash = "–";
    function num(v, unit) { return v === null || v === undefined ? dash : fmt(v) + (unit || ""); }
    var sat = C.satisfaction[i] === null || C.satisfaction[i] === undefined ? dash :
      fmt(C.satisfaction[i]) + " / 5" +
      (C.evaluated[i] ? "（" + fmt(C.evaluated[i]) + " 条评价）" : "");
    var rows = [
      ["案件数", num(C.cases[i], " 件")],
      ["办结率", num(C.resolution_rate[i], "%")],
      ["按期办结率", num(C.on_time_rate[i], "%")],
      ["重办率", num(C.reopened_rate[i], "%")],
      ["平均办结时长", num(C.mean_hours_to_close[i], " 小时")],
      ["P90 办结时长", num(C.p90_hours_to_close[i], " 小时")],
      ["满意度", sat],
      ["在办", num(C.open[i], " 件")],
      ["超期", num(C.overdue[i], " 件")]
    ];
    return '<tr class="gm-sec"><th colspan="2">案件统计</th></tr>' + rows.map(function (r) {
      return '<tr class="gm-case"><th>' + esc(r[0]) + "</th><td>" + esc(r[1]) + "</td></tr>";
    }).join("");
  }

  function workload(map, D) {
    var G = D.grids, W = D.load, nG = G.code.length, C = D.cases || null;
    var specs = {};
    (D.caseLayers || []).forEach(function (s) { specs[s.key] = s; });
    var state = {
      kind: "workload", band: D.band.slice(), classes: new Array(nG), layer: "band",
      caseClasses: new Array(nG)
    };
    window.gridmapState = state;
    var colors = D.colors;
    function classify(i) {
      var h = W.households[i];
      return h < state.band[0] ? "under" : (h > state.band[1] ? "over" : "inside");
    }
    var styleOf = function (i) {
      var fill;
      if (state.layer === "band") {
        var c = classify(i);
        state.classes[i] = c;
        fill = colors[c];
      } else {
        var spec = specs[state.layer], k = caseClass(spec, C[spec.key][i]);
        state.caseClasses[i] = k;
        fill = k < 0 ? D.caseMissing : spec.colors[k];
      }
      return { color: "#333", weight: 1, opacity: 0.9, fillColor: fill, fillOpacity: 0.6 };
    };
    var b = base(map, D, styleOf);
    layerControl(map, b);
    var labels = D.classLabels;
    function legend() {
      if (state.layer !== "band") {
        var spec = specs[state.layer], tally = spec.colors.map(function () { return 0; }), none = 0;
        state.caseClasses.forEach(function (k) { if (k < 0) { none++; } else { tally[k]++; } });
        state.caseTally = tally.concat([none]);
        var rows = spec.labels.map(function (l, k) {
          return [spec.colors[k], l + "（" + tally[k] + " 格）"];
        });
        if (none) { rows.push([D.caseMissing, spec.missing + "（" + none + " 格）"]); }
        setLegend(spec.title, rows, spec.note);
        return;
      }
      var counts = { under: 0, inside: 0, over: 0 };
      state.classes.forEach(function (c) { counts[c]++; });
      state.tally = counts;
      setLegend(D.legendTitle, ["under", "inside", "over"].map(function (c) {
        return [colors[c], labels[c] + "（" + counts[c] + " 格）"];
      }), "目标 " + state.band[0] + "–" + state.band[1] + " 户");
    }
    function redraw() {
      b.shapes.forEach(function (p, i) { p.setStyle(styleOf(i)); });
      legend();
    }
    b.shapes.forEach(function (p, i) {
      p.bindPopup(function () {
        return gridHeader(G, i) +
          "<tr><th>户数</th><td>" + fmt(W.households[i]) + "</td></tr>" +
          "<tr><th>人口</th><td>" + fmt(W.residents[i]) + "</td></tr>" +
          "<tr><th>楼栋</th><td>" + fmt(W.buildings[i]) + "</td></tr>" +
          "<tr><th>在办案件</th><td>" + fmt(W.open_reports[i]) + "</td></tr>" +
          "<tr><th>负荷</th><td>" + esc(labels[classify(i)]) + "</td></tr>" +
          (C ? caseRows(C, i) : "") + "</table></div>";
      });
    });
    var form = moveIntoControl(map, "gm-band", "topleft");
    var bandInputs = form ? form.querySelectorAll("input") : [];
    if (form) {
      form.addEventListener("change", function () {
        var lo = +document.getElementById("gm-band-lo").value;
        var hi = +document.getElementById("gm-band-hi").value;
        if (isFinite(lo) && isFinite(hi) && lo <= hi) {
          state.band = [lo, hi];
          if (state.layer === "band") { redraw(); }
        }
      });
      form.addEventListener("submit", function (e) { e.preventDefault(); });
    }
    var switcher = C ? moveIntoControl(map, "gm-layer", "topleft") : null;
    var select = document.getElementById("gm-layer-select");
    if (switcher && select) {
      select.value = "band";
      select.addEventListener("change", function () {
        state.layer = specs[select.value] ? select.value : "band";
        // The band only colours the band layer: its inputs rest while a case layer shows.
        Array.prototype.forEach.call(bandInputs, function (el) {
          el.disabled = state.layer !== "band";
        });
        redraw();
      });
      switcher.addEventListener("submit", function (e) { e.preventDefault(); });
    }
    legend();
    state.ready = true;
  }

  /* ---- plan comparison ----------------------------------------------------------- */

  function compare(map, D) {
    var G = D.grids, C = D.change;
    var state = { kind: "compare" };
    window.gridmapState = state;
    var b = base(map, D, function (i) {
      return { color: "#333", weight: 0.8, opacity: 0.9, fillColor: C.color[i], fillOpacity: 0.65 };
    });
    var old = L.layerGroup();
    D.old.g.forEach(function (f, i) {
      L.polyline(lineLatLngs(D.old, i), {
        className: "gm-old", color: "#6a1b9a", weight: 2.2, dashArray: "6 4",
        interactive: false, fill: false
      }).addTo(old);
    });
    old.addTo(map);
    b.overlays[D.oldLabel] = old;
    layerControl(map, b);
    b.shapes.forEach(function (p, i) {
      p.bindPopup(function () {
        var prev = C.previous[i].map(function (r) {
          return esc(r[0]) + "（" + fmt(r[1]) + " 户）";
        }).join("、");
        return gridHeader(G, i) +
          "<tr><th>户数（新）</th><td>" + fmt(C.households[i]) + "</td></tr>" +
          "<tr><th>原网格负荷</th><td>" + fmt(C.before[i]) + "</td></tr>" +
          "<tr><th>变化</th><td>" + (C.delta[i] > 0 ? "+" : "") + fmt(C.delta[i]) + "</td></tr>" +
          "<tr><th>来自</th><td>" + (prev || "—") + "</td></tr></table></div>";
      });
    });
    var toggle = document.getElementById("gm-old-toggle");
    if (toggle) {
      moveIntoControl(map, "gm-compare-panel", "topleft");
      toggle.addEventListener("change", function () {
        if (toggle.checked) { old.addTo(map); } else { map.removeLayer(old); }
      });
      map.on("overlayadd overlayremove", function () { toggle.checked = map.hasLayer(old); });
    }
    state.ready = true;
  }

  var kinds = { hotspots: hotspots, workload: workload, compare: compare };

  window.gridmap = {
    /* The decoders, for tests: [lat, lng] rings of feature i of a payload layer. */
    polygonLatLngs: polygonLatLngs,
    lineLatLngs: lineLatLngs,
    start: function (map, kind, dataId) {
      var D = JSON.parse(document.getElementById(dataId).textContent);
      // Without tiles Leaflet has no zoom limits; clusters and heat need one.
      map.setMinZoom(8);
      map.setMaxZoom(19);
      moveIntoControl(map, "gm-legend", "bottomright");
      var title = document.getElementById("gm-title");
      if (title) { moveIntoControl(map, "gm-title", "topleft"); }
      kinds[kind](map, D);
    }
  };
})();
