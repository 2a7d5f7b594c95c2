// The dashboard's pages, drawn from the JSON API (/api/...). Text from the store is only ever set as
// textContent, never parsed as HTML. Live pages poll the API and redraw when the answer changes.
"use strict";

(function () {
  var app = document.getElementById("app");
  if (!app) return;
  var POLL_MS = 1500;
  var FRONT = "#1f4e9c", SEED = "#e07b00", RANDOM = "#8e3ca8", POINT = "#9a9a9a", IMP = "#10908a";
  var CONFIRM = "#c0282d", PALETTE = ["#1f4e9c", "#d4572a", "#10908a", "#8e3ca8", "#2a8a3a", "#e07b00"];

  // ---- helpers -------------------------------------------------------------------------------------
  function el(tag, attrs) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "text") node.textContent = attrs[k];
      else if (k === "cls") node.className = attrs[k];
      else node.setAttribute(k, attrs[k]);
    });
    for (var i = 2; i < arguments.length; i++) {
      var child = arguments[i];
      if (child === null || child === undefined) continue;
      node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    }
    return node;
  }
  var INTEGER = /^(id|gen|generation|generations|trained|individuals|isomorph_hits|evaluated|skipped|kept|total|effective_kept|live_inputs|inputs|live_outputs|outputs|seed|round|early_stop|steps|classes|front|points|below_base_front|own_stop|reinit_stop)$/;
  function fmt(field, v) {
    if (v === null || v === undefined) return "-";
    if (typeof v === "boolean") return v ? "yes" : "no";
    if (typeof v !== "number") return String(v);
    if (Number.isInteger(v) && INTEGER.test(field)) return String(v);
    if (/density/.test(field)) return v.toFixed(5);
    if (field === "compression") return v.toFixed(1);
    if (field === "elapsed" || field === "wall_time") return v.toFixed(1) + " s";
    return v.toFixed(4);
  }
  function when(iso) { return iso ? iso.slice(0, 19).replace("T", " ") + " UTC" : "-"; }
  function runUrl(run) { return "/runs/" + encodeURIComponent(run); }
  function maskUrl(run, id) { return runUrl(run) + "/masks/" + id; }
  function status(text, bad) {
    var s = document.getElementById("status");
    s.textContent = text;
    s.className = bad ? "status error" : "status";
  }
  function getJSON(url) {
    return fetch(url, { credentials: "same-origin", cache: "no-store" }).then(function (r) {
      return r.json().then(function (body) {
        if (!r.ok) throw new Error(body.error || r.statusText);
        return body;
      });
    });
  }
  function section(id, title) {
    var s = document.getElementById(id);
    if (!s) {
      s = el("section", { id: id });
      app.appendChild(s);
    }
    s.textContent = "";
    if (title) s.appendChild(el("h2", { text: title }));
    return s;
  }
  // A table of rows; link(row, field) may return an href for a cell.
  function table(rows, fields, link, cls) {
    var head = el("tr", {});
    fields.forEach(function (f) { head.appendChild(el("th", { text: f })); });
    var body = el("tbody", {});
    rows.forEach(function (row) {
      var tr = el("tr", { "data-id": row.id === undefined ? "" : String(row.id) });
      fields.forEach(function (f) {
        var text = fmt(f, row[f]);
        var href = link ? link(row, f) : null;
        var td = el("td", { cls: typeof row[f] === "number" ? "num" : "" }, href ? el("a", { href: href, text: text }) : text);
        tr.appendChild(td);
      });
      body.appendChild(tr);
    });
    return el("table", { cls: cls || "rows" }, el("thead", {}, head), body);
  }
  function facts(pairs) {
    var t = el("table", { cls: "facts" });
    pairs.forEach(function (p) { t.appendChild(el("tr", {}, el("th", { text: p[0] }), el("td", {}, p[1]))); });
    return t;
  }
  // Poll fn (which returns a promise of a JSON string to compare) and redraw only when it changes.
  function poll(load, draw) {
    var last = null;
    function tick() {
      load().then(function (data) {
        var text = JSON.stringify(data);
        if (text !== last) { last = text; draw(data); }
        status("live · last checked " + new Date().toLocaleTimeString());
      }).catch(function (e) { status(e.message, true); })
        .then(function () { setTimeout(tick, POLL_MS); });
    }
    tick();
  }
  var AXES = {
    xaxis: { type: "log", title: { text: "density (kept / total weights, log scale)" } },
    yaxis: { title: { text: "validation accuracy" } },
    hovermode: "closest",
    margin: { t: 30, r: 20, b: 50, l: 60 },
    legend: { orientation: "h", y: -0.2 },
  };
  var HOVER = "id %{customdata[0]}<br>accuracy %{y:.4f}<br>density %{x:.5f}<br>%{customdata[1]}<extra>%{fullData.name}</extra>";
  function points(rows, name, marker, extra) {
    var shown = rows.filter(function (r) { return r.density > 0; });
    return Object.assign({
      type: "scatter", mode: "markers", name: name + " (" + shown.length + ")",
      x: shown.map(function (r) { return r.density; }),
      y: shown.map(function (r) { return r.accuracy; }),
      customdata: shown.map(function (r) { return [r.id, r.origin, r.run || ""]; }),
      hovertemplate: HOVER, marker: marker,
    }, extra || {});
  }
  function clickThrough(div, run) {
    div.on("plotly_click", function (ev) {
      var p = ev.points && ev.points[0];
      if (p && p.customdata) window.location.href = maskUrl(p.customdata[2] || run, p.customdata[0]);
    });
  }

  // ---- runs ----------------------------------------------------------------------------------------
  var RUN_FIELDS = ["id", "kind", "status", "generation", "trained", "isomorph_hits", "individuals", "best_accuracy", "hypervolume", "updated"];
  function drawRuns(data) {
    document.querySelector("nav .ws").textContent = "workspace " + data.workspace;
    var s = section("runs", data.runs.length + " run" + (data.runs.length === 1 ? "" : "s"));
    if (!data.runs.length) { s.appendChild(el("p", { text: "no runs yet: a search creates them" })); return; }
    var rows = data.runs.map(function (r) {
      var gen = r.generations === null ? "-" : String(r.generations);
      return Object.assign({}, r, {
        generation: r.planned === null ? gen : gen + " / " + r.planned,
        updated: when(r.updated),
      });
    });
    var t = table(rows, RUN_FIELDS, function (row, f) { return f === "id" ? runUrl(row.id) : null; }, "rows runs");
    // A checkbox per run: the chosen ones open in the compare page.
    t.tHead.rows[0].insertBefore(el("th", { text: "compare" }), t.tHead.rows[0].firstChild);
    Array.prototype.forEach.call(t.tBodies[0].rows, function (tr, i) {
      tr.insertBefore(el("td", {}, el("input", { type: "checkbox", name: "run", value: data.runs[i].id })), tr.firstChild);
    });
    var form = el("form", { action: "/compare", method: "get" }, t, el("button", { type: "submit", text: "compare the checked runs" }));
    s.appendChild(form);
  }

  // ---- one run -------------------------------------------------------------------------------------
  // An axis range around the data (a tenth of its spread, at least 1% of its size, either side): Plotly's
  // own range around one point or a flat series runs far beyond it (an accuracy of 0.48 labelled from -0.159
  // to 0.711), which a reader cannot read.
  function span(values) {
    var v = values.filter(function (x) { return x !== null && isFinite(x); });
    if (!v.length) return undefined;
    var lo = Math.min.apply(null, v), hi = Math.max.apply(null, v);
    var pad = Math.max((hi - lo) * 0.1, Math.abs(hi) * 0.01, 1e-4);
    return [lo - pad, hi + pad];
  }
  function drawRun(data, front) {
    var run = data.run, id = run.id;
    document.querySelector("h1").textContent = "run " + id;
    var head = section("summary", null);
    head.appendChild(el("p", { cls: "sub", text: run.title }));
    head.appendChild(facts([
      ["name", run.name], ["kind", run.kind], ["status", run.status], ["stage", run.stage],
      ["masks evaluated", String(run.individuals)], ["classes trained", String(run.trained)],
      ["isomorph hits", String(run.isomorph_hits)], ["hypervolume", fmt("hypervolume", run.hypervolume)],
      ["best accuracy", fmt("accuracy", run.best_accuracy)], ["created", when(run.created)], ["updated", when(run.updated)],
      ["compute", run.ledger_line], ["confirmations' compute", run.confirmation_ledger_line],
    ]));

    var plot = section("front", "Pareto front (" + front.length + " masks; click a point to open its mask)");
    var div = el("div", { id: "front-plot", cls: "plot" });
    plot.appendChild(div);
    var groups = { child: [], "seed+": [], seed: [], random: [], imp: [] };
    // Points on the front (and their copies: clones, isomorphs with the same objectives) are the front's.
    data.masks.forEach(function (m) { if (!m.is_pareto) groups[m.kind].push(m); });
    var traces = [
      points(groups.child, "children", { color: POINT, size: 6, opacity: 0.45 }),
      points(groups["seed+"], "mutated seeds", { color: SEED, size: 7, symbol: "diamond-open" }),
      points(groups.seed, "seeds", { color: SEED, size: 12, symbol: "star", line: { color: "black", width: 0.5 } }),
      points(groups.random, "random controls", { color: RANDOM, size: 8, symbol: "x" }),
      points(groups.imp, "IMP tickets", { color: IMP, size: 8, symbol: "triangle-up" }),
    ].filter(function (t) { return t.x.length; });
    // Confirmations: test accuracy at early stop under the full protocol, own init filled, reinit mean open.
    [["confirmed_own", "confirmed, own init", { color: CONFIRM, size: 9, line: { color: "black", width: 0.5 } }],
      ["confirmed_reinit", "confirmed, reinit mean", { color: CONFIRM, size: 9, symbol: "circle-open" }]].forEach(function (c) {
      var shown = data.masks.filter(function (m) { return m[c[0]] !== undefined && m[c[0]] !== null; });
      if (shown.length) traces.push(points(shown.map(function (m) { return Object.assign({}, m, { accuracy: m[c[0]] }); }), c[1], c[2]));
    });
    traces.push(points(front, "Pareto front", { color: FRONT, size: 10, line: { color: "white", width: 1 } },
      { mode: "lines+markers", line: { shape: "hv", color: FRONT, width: 2 }, meta: "front" }));
    var layout = Object.assign({}, AXES, { height: 520 });
    if (data.confirmed_fields.length) {
      layout.yaxis = { title: { text: "validation accuracy; confirmed: test accuracy at early stop" } };
    }
    Plotly.react(div, traces, layout, { displaylogo: false, responsive: true });
    if (!div.dataset.clicks) { clickThrough(div, id); div.dataset.clicks = "1"; }

    var gens = section("generations", run.kind === "imp" ? "tickets per round" : "hypervolume per generation");
    if (run.kind === "imp") {
      gens.appendChild(table(data.tickets, ["id", "seed", "round", "density", "early_stop", "val_accuracy", "test_accuracy", "is_pareto"],
        function (row, f) { return f === "id" ? maskUrl(id, row.id) : null; }));
    } else if (data.generations.length) {
      var hv = el("div", { id: "hv-plot", cls: "plot small" });
      gens.appendChild(hv);
      var g = data.generations.map(function (r) { return r.gen; });
      var hvs = data.generations.map(function (r) { return r.hypervolume; });
      var best = data.generations.map(function (r) { return r.best_accuracy; });
      Plotly.react(hv, [
        { type: "scatter", mode: "lines+markers", name: "hypervolume", x: g, y: data.generations.map(function (r) { return r.hypervolume; }), line: { color: FRONT } },
        { type: "scatter", mode: "lines+markers", name: "best accuracy (population)", yaxis: "y2", x: g, y: data.generations.map(function (r) { return r.best_accuracy; }), line: { color: "#2a8a3a", dash: "dash" } },
      ], {
        height: 300, margin: { t: 20, r: 60, b: 40, l: 60 }, legend: { orientation: "h", y: -0.3 },
        xaxis: { title: { text: "generation" }, dtick: 1 },
        yaxis: { title: { text: "hypervolume" }, range: span(hvs), autorange: false },
        yaxis2: { title: { text: "best validation accuracy" }, overlaying: "y", side: "right", range: span(best), autorange: false },
      }, { displaylogo: false, responsive: true });
      if (data.diagnostics && data.diagnostics.length) {
        // Is the search still searching: how many ancestries the population holds, how alike its masks are.
        var diag = el("div", { id: "diag-plot", cls: "plot small" });
        gens.appendChild(el("p", { cls: "sub", text: "lineage: the set of generation-0 masks an individual descends from; overlap: mean pairwise Jaccard of the population's masks (1: all the same)" }));
        gens.appendChild(diag);
        var dg = data.diagnostics.map(function (r) { return r.gen; });
        var lineages = data.diagnostics.map(function (r) { return r.lineages; });
        Plotly.react(diag, [
          { type: "scatter", mode: "lines+markers", name: "distinct lineages", x: dg, y: lineages, line: { color: SEED } },
          { type: "scatter", mode: "lines+markers", name: "founders with descendants", x: dg, y: data.diagnostics.map(function (r) { return r.founders; }), line: { color: SEED, dash: "dot" } },
          { type: "scatter", mode: "lines+markers", name: "overlap (mean pairwise Jaccard)", yaxis: "y2", x: dg, y: data.diagnostics.map(function (r) { return r.overlap; }), line: { color: RANDOM, dash: "dash" } },
        ], {
          height: 280, margin: { t: 20, r: 60, b: 40, l: 60 }, legend: { orientation: "h", y: -0.3 },
          xaxis: { title: { text: "generation" }, dtick: 1 },
          yaxis: { title: { text: "lineages" }, rangemode: "tozero" },
          yaxis2: { title: { text: "overlap" }, overlaying: "y", side: "right", range: [0, 1.02], autorange: false },
        }, { displaylogo: false, responsive: true });
      }
      gens.appendChild(table(data.generations, ["gen", "hypervolume", "best_accuracy", "evaluated", "skipped", "elapsed"], null, "rows gens"));
    } else {
      gens.appendChild(el("p", { text: "no generation committed yet" }));
    }

    var rungs = section("rungs", "successive-halving rungs");
    rungs.appendChild(table(data.rungs, ["fidelity", "steps", "classes", "individuals"]));
    var link = function (row, f) { return f === "id" ? maskUrl(id, row.id) : null; };
    var fields = ["id", "accuracy", "density", "effective_density", "compression", "class_key", "generation", "origin"].concat(data.confirmed_fields);
    section("front-table", "front").appendChild(table(front, fields, link, "rows front"));
    var all = section("masks", "every evaluated mask (" + data.masks.length + ")");
    all.appendChild(table(data.masks.slice(0, 2000), fields.concat(["fidelity", "evaluated", "is_pareto"]), link, "rows masks"));
    section("config", "config").appendChild(el("pre", {}, el("code", { text: data.config_toml })));
  }

  // ---- one mask ------------------------------------------------------------------------------------
  function tree(node, run) {
    var label = node.seen ? el("span", { cls: "seen" }, el("a", { href: maskUrl(run, node.id), text: "#" + node.id }), " (shown above)")
      : el("span", {}, el("a", { href: maskUrl(run, node.id), text: "#" + node.id }),
        " " + node.origin + " · gen " + node.generation + " · acc " + fmt("accuracy", node.accuracy) + " · density " + fmt("density", node.density));
    var li = el("li", {}, label);
    if (node.parents.length) {
      var ul = el("ul", {});
      node.parents.forEach(function (p) { ul.appendChild(tree(p, run)); });
      li.appendChild(ul);
    }
    if (node.cut) li.appendChild(el("div", { cls: "sub", text: "(older ancestors not shown)" }));
    return li;
  }
  function drawMask(data) {
    var run = data.run, m = data.mask, base = maskUrl(run, m.id);
    document.querySelector("h1").textContent = "mask " + m.id + " of run " + run;
    var s = section("summary", null);
    s.appendChild(el("p", {}, el("a", { href: runUrl(run), text: "← run " + run }), " · ",
      el("a", { href: base + ".npz", id: "download", text: "download .npz" }), " (what lotterysearch train --mask reads)"));
    var c = data.class;
    s.appendChild(facts([
      ["accuracy", fmt("accuracy", m.accuracy)], ["density", fmt("density", m.density)],
      ["effective density", fmt("density", m.effective_density)], ["compression", fmt("compression", m.compression)],
      ["origin", m.origin], ["generation", String(m.generation)], ["fidelity", fmt("fidelity", m.fidelity)],
      ["on the Pareto front", data.on_front ? "yes" : "no"],
      ["trained for it", m.evaluated ? "yes" : "no (an isomorph hit: its class was trained already)"],
      ["class key", c.key],
      ["isomorphs", c.members + (c.members === 1 ? " mask of this run is" : " masks of this run are") + " this class; " +
        c.isomorph_hits + " reused its training (isomorph hits)"],
      ["class trained by", c.trained_by === null ? "-" : "#" + c.trained_by + " (" + c.steps + " steps on " + c.node + ")"],
    ].concat(data.confirmed ? Object.keys(data.confirmed).map(function (k) { return [k, fmt(k, data.confirmed[k])]; }) : [])));

    var layers = data.layers.map(function (l) { return Object.assign({}, l, { shape: l.shape.join(" × ") }); });
    section("layers", "layers").appendChild(table(layers, ["layer", "shape", "kept", "total", "density", "effective_kept", "effective_density", "live_inputs", "inputs", "live_outputs", "outputs"]));
    var imgs = section("images", "the mask, layer by layer (rows: output neurons, columns: inputs)");
    imgs.appendChild(el("p", { cls: "legend" }, el("span", { cls: "sw eff" }), " on an input→output path ",
      el("span", { cls: "sw dead" }), " kept, on no path ", el("span", { cls: "sw pruned" }), " pruned"));
    data.layers.forEach(function (l) {
      imgs.appendChild(el("figure", {}, el("img", { src: base + "/layers/" + encodeURIComponent(l.layer) + ".png", alt: "layer " + l.layer, cls: "mask" }),
        el("figcaption", { text: l.layer + " · " + l.shape.join(" × ") + " · density " + fmt("density", l.density) })));
    });
    if (data.mnist_inputs) {
      var mn = section("inputs", "first layer over 28×28 inputs (effective weights)");
      mn.appendChild(el("figure", {}, el("img", { src: base + "/inputs/sum.png", alt: "inputs summed", cls: "mask" }),
        el("figcaption", { text: "summed: how many live neurons each pixel feeds" })));
      mn.appendChild(el("figure", {}, el("img", { src: base + "/inputs/neurons.png", alt: "inputs per neuron", cls: "mask" }),
        el("figcaption", { text: "per live neuron: its kept input pixels" })));
    }
    var lin = section("lineage", "lineage (parents and the operators that made each child)");
    lin.appendChild(el("ul", { cls: "tree" }, tree(data.lineage, run)));
    var cmp = section("class", "masks of this class");
    cmp.appendChild(el("p", {}, c.member_ids.map(function (i) { return el("a", { href: maskUrl(run, i), text: "#" + i + " " }); }).reduce(function (p, a) { p.appendChild(a); return p; }, el("span", {}))));
  }

  // ---- compare -------------------------------------------------------------------------------------
  function drawCompare(data) {
    var s = section("fronts", "fronts overlaid (base: " + data.base + ")");
    var div = el("div", { id: "compare-plot", cls: "plot" });
    s.appendChild(div);
    var traces = [];
    data.runs.forEach(function (r, i) {
      var colour = PALETTE[i % PALETTE.length];
      var tag = function (rows) { return rows.map(function (p) { return Object.assign({ run: r.id }, p); }); };
      traces.push(points(tag(r.points), r.id + " points", { color: colour, size: 6, opacity: 0.35 }));
      traces.push(points(tag(r.front), r.id + " front", { color: colour, size: 9 }, { mode: "lines+markers", line: { shape: "hv", color: colour, width: 2 } }));
      if (r.kind === "search" && r.seed_front.length) {
        var pruner = r.seed_front[0].origin.split(":")[0];
        traces.push(points(tag(r.seed_front), r.id + " " + pruner + " alone (seeds)", { color: colour, size: 8, symbol: "star-open" },
          { mode: "lines+markers", line: { shape: "hv", color: colour, width: 1.5, dash: "dot" } }));
      }
    });
    Plotly.react(div, traces, Object.assign({}, AXES, { height: 520 }), { displaylogo: false, responsive: true });
    clickThrough(div, data.base);
    var rows = data.runs.map(function (r) {
      return { id: r.id, kind: r.kind, status: r.status, stage: r.stage, hypervolume: r.hypervolume, front: r.front.length, points: r.points.length,
        below_base_front: r.below_base_front, seed_hypervolume: r.kind === "search" ? r.seed_hypervolume : null };
    });
    s.appendChild(table(rows, ["id", "kind", "status", "stage", "hypervolume", "seed_hypervolume", "front", "points", "below_base_front"], function (row, f) { return f === "id" ? runUrl(row.id) : null; }));
    s.appendChild(el("p", { cls: "sub", text: "below_base_front: points of the run that the first run's front dominates; seed_hypervolume: the front of the search's pruner seeds alone (no GA)." }));
  }
  function drawOverlap(o) {
    var s = section("overlap", "overlap of " + o.a.run + ":" + o.a.id + " and " + o.b.run + ":" + o.b.id);
    s.appendChild(facts([
      ["Jaccard, raw", fmt("accuracy", o.raw)], ["Jaccard, hidden neurons aligned", fmt("accuracy", o.aligned)],
      ["chance level (same per-layer counts)", fmt("accuracy", o.chance)],
      ["excess over chance, raw / aligned", fmt("accuracy", o.raw_excess) + " / " + fmt("accuracy", o.aligned_excess)],
      ["same isomorphism class", o.same_class ? "yes" : "no"],
    ]));
    s.appendChild(table(o.layers, ["layer", "raw", "aligned", "chance"], null, "rows overlap"));
  }
  function compareForm() {
    var q = new URLSearchParams(window.location.search);
    var s = section("choose", "masks to compare (RUN:ID)");
    var form = el("form", { action: "/compare", method: "get" });
    q.getAll("run").forEach(function (r) { form.appendChild(el("input", { type: "hidden", name: "run", value: r })); });
    form.appendChild(el("input", { name: "a", placeholder: "run:id", value: q.get("a") || "" }));
    form.appendChild(el("input", { name: "b", placeholder: "run:id", value: q.get("b") || "" }));
    form.appendChild(el("button", { type: "submit", text: "overlap" }));
    s.appendChild(form);
  }
  function ref(text) { var i = text.lastIndexOf(":"); return encodeURIComponent(text.slice(0, i)) + "/" + text.slice(i + 1); }

  // ---- dispatch ------------------------------------------------------------------------------------
  var page = app.dataset.page;
  if (page === "runs") poll(function () { return getJSON("/api/runs"); }, drawRuns);
  if (page === "run") {
    // The runs listing (SQL counts, cheap) says when the run committed something; only then is the whole
    // run (every mask) read again.
    var base = "/api/runs/" + encodeURIComponent(app.dataset.run), stamp = null, cached = null;
    poll(function () {
      return getJSON("/api/runs").then(function (all) {
        var now = JSON.stringify(all.runs.filter(function (r) { return r.id === app.dataset.run; }));
        if (cached && now === stamp) return cached;
        return Promise.all([getJSON(base), getJSON(base + "/front")]).then(function (both) {
          stamp = now;
          cached = both;
          return both;
        });
      });
    }, function (both) { drawRun(both[0], both[1]); });
  }
  if (page === "mask") {
    getJSON("/api/runs/" + encodeURIComponent(app.dataset.run) + "/masks/" + app.dataset.id)
      .then(function (d) { drawMask(d); status("loaded " + new Date().toLocaleTimeString()); })
      .catch(function (e) { status(e.message, true); });
  }
  if (page === "compare") {
    compareForm();
    var runs = (app.dataset.runs || "").split(",").filter(Boolean);
    var jobs = [];
    if (runs.length) {
      jobs.push(getJSON("/api/compare?" + runs.map(function (r) { return "run=" + encodeURIComponent(r); }).join("&")).then(drawCompare));
    }
    if (app.dataset.a && app.dataset.b) {
      jobs.push(getJSON("/api/overlap/" + ref(app.dataset.a) + "/" + ref(app.dataset.b)).then(drawOverlap));
    }
    if (!jobs.length) status("check runs on the runs page to overlay their fronts, or give two masks as RUN:ID");
    else Promise.all(jobs).then(function () { status("loaded " + new Date().toLocaleTimeString()); }).catch(function (e) { status(e.message, true); });
  }
})();
