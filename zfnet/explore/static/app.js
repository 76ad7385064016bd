// zfnet explore: the page. Plain JavaScript, no build step, nothing fetched from elsewhere.
// Live, it reads the JSON API (/api/...); in a static export, window.ZFNET_DATA (data.js) holds
// the same answers and the image files sit beside the page. Every view is a URL (#/...).
"use strict";

const DATA = window.ZFNET_DATA || null;      // set by an export's data.js; null when served live
const view = document.getElementById("view");
let model = null;
let renderId = 0;                           // a newer view wins over a slower older one

// -- small helpers ----------------------------------------------------------------------------
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c !== null && c !== undefined) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}
const enc = encodeURIComponent;
const fmt = v => Number(v).toPrecision(4);

function showError(message) {
  const box = document.getElementById("error");
  box.textContent = message || "";
  box.hidden = !message;
}

async function api(url, options) {
  const r = await fetch(url, options);
  const isJson = (r.headers.get("content-type") || "").includes("json");
  const body = isJson ? await r.json() : null;
  if (!r.ok) throw new Error((body && body.error) || `${r.status} ${r.statusText}`);
  return body;
}

// What a view needs, live (the API) or exported (ZFNET_DATA): the same shapes either way.
const source = {
  model: () => DATA ? DATA.model : api("/api/model"),
  maps: layer => {
    if (!DATA) return api(`/api/layers/${enc(layer)}/maps`);
    if (!DATA.maps[layer]) throw new Error(`layer ${layer} was not exported`);
    return DATA.maps[layer];
  },
  topk: (layer, map, mode) => {
    if (!DATA) return api(`/api/layers/${enc(layer)}/maps/${map}/topk?mode=${enc(mode)}`);
    const t = (DATA.topk[layer] || {})[map];
    if (!t || !t[mode]) throw new Error(`map ${map} of ${layer} in mode ${mode} was not exported`);
    return t[mode];
  },
};

function parseHash() {
  const raw = location.hash.replace(/^#\/?/, "");
  const [path, query] = raw.split("?");
  const parts = (path || "model").split("/").map(decodeURIComponent);
  return {parts, q: new URLSearchParams(query || "")};
}

function go(hash) {
  if (location.hash !== hash) location.hash = hash; else route();
}

function layerLink(layer) { return `#/layer/${enc(layer)}`; }
function mapLink(layer, map, mode) { return `${layerLink(layer)}/map/${map}${mode ? "?mode=" + enc(mode) : ""}`; }

// -- navigation -------------------------------------------------------------------------------
function drawNav(active) {
  const nav = document.getElementById("nav");
  nav.replaceChildren();
  const link = (href, text, key) => h("a", {href, class: active === key ? "active" : null}, text);
  nav.append(link("#/model", "Model", "model"));
  for (const s of model.scans) nav.append(link(layerLink(s.layer), `Maps of ${s.layer}`, "layer:" + s.layer));
  if (!DATA) nav.append(link("#/image", "Your image", "image"));
}

async function route() {
  const id = ++renderId;
  const {parts, q} = parseHash();
  showError("");
  try {
    if (!model) model = await source.model();
    document.getElementById("model-name").textContent = `${model.model} (${model.architecture})`;
    let page;
    if (parts[0] === "layer" && parts.length >= 4 && parts[2] === "map") {
      drawNav("layer:" + parts[1]);
      page = await mapView(parts[1], parseInt(parts[3], 10), q.get("mode"));
    } else if (parts[0] === "layer" && parts[1]) {
      drawNav("layer:" + parts[1]);
      page = await layerView(parts[1]);
    } else if (parts[0] === "image" && !DATA) {
      drawNav("image");
      page = await imageView(parts[1], q, id);
    } else {
      drawNav("model");
      page = modelView();
    }
    if (id === renderId && page) view.replaceChildren(page);
  } catch (e) {
    if (id === renderId) showError(e.message);
  }
}

// -- model --------------------------------------------------------------------------------------
function modelView() {
  const scanned = new Set(model.scans.map(s => s.layer));
  const rows = model.layers.map(l => h("tr", {},
    h("td", {}, scanned.has(l.name) ? h("a", {href: layerLink(l.name)}, l.name) : l.name),
    h("td", {}, l.op), h("td", {}, l.shape.join(" x ")),
    h("td", {}, l.receptive_field ? `${l.receptive_field.size[0]} px, stride ${l.receptive_field.stride[0]}` : "whole image")));
  return h("div", {},
    h("h2", {}, `${model.model}: ${model.layers.length} layers, input ${model.input_shape.join(" x ")}`),
    model.scans.length ? h("p", {}, "Scanned layers: ",
      model.scans.map(s => h("a", {href: layerLink(s.layer), class: "scan-link"}, `${s.layer} (${s.maps} maps, top-${s.k} over ${s.images_scanned} images) `)))
      : h("p", {class: "note"}, "No scan given: run zfnet topk, then zfnet explore --scan DIR to browse its maps."),
    model.filters ? [h("h3", {}, "First-layer filters"), h("img", {class: "filters", src: model.filters, alt: "conv1 filters"})] : null,
    h("h3", {}, "Layers"),
    h("table", {id: "layers"}, h("tr", {}, h("th", {}, "layer"), h("th", {}, "op"), h("th", {}, "output (C x H x W)"),
      h("th", {}, "receptive field")), rows));
}

// -- maps of a layer ----------------------------------------------------------------------------
async function layerView(layer) {
  const d = await source.maps(layer);
  return h("div", {},
    h("h2", {}, `${layer}: ${d.maps.length} feature maps`),
    h("p", {class: "note"}, `Each map's strongest unit over the scanned images, projected (${d.mode}). Click a map for its top-${d.k}.`),
    h("div", {class: "maps", id: "maps"}, d.maps.map(m => h("a", {href: mapLink(layer, m.map), title: `map ${m.map}: ${fmt(m.value)} (${m.image})`},
      h("img", {src: m.thumb, alt: `map ${m.map}`, loading: "lazy"}), h("div", {}, `map ${m.map}`)))));
}

async function mapView(layer, map, mode) {
  const maps = (await source.maps(layer));
  mode = mode || maps.mode;
  const t = await source.topk(layer, map, mode);
  const modes = DATA ? Object.keys(DATA.topk[layer][map]) : model.modes;
  const ids = maps.maps.map(m => m.map);
  const i = ids.indexOf(map);
  const select = h("select", {id: "mode", onchange: e => go(mapLink(layer, map, e.target.value))},
    modes.map(m => h("option", {value: m, selected: m === mode}, m)));
  return h("div", {},
    h("h2", {}, `Map ${map} of ${layer}: top-${t.cells.length}`),
    h("div", {class: "toolbar"},
      h("a", {href: layerLink(layer)}, "all maps"),
      i > 0 ? h("a", {href: mapLink(layer, ids[i - 1], mode)}, `< map ${ids[i - 1]}`) : null,
      i >= 0 && i + 1 < ids.length ? h("a", {href: mapLink(layer, ids[i + 1], mode)}, `map ${ids[i + 1]} >`) : null,
      h("label", {}, "mode ", select)),
    h("div", {class: "cells", id: "cells"}, t.cells.map(c => h("div", {class: "cell"},
      h("img", {src: c.projection, alt: `projection, rank ${c.rank + 1}`, class: "proj"}), " ",
      h("img", {src: c.patch, alt: `patch, rank ${c.rank + 1}`, class: "patch"}),
      h("div", {}, `#${c.rank + 1}  value ${fmt(c.value)}`),
      h("div", {}, `${c.name}  (y ${c.y}, x ${c.x})`)))));
}

// -- your image (live only) -----------------------------------------------------------------------
function spatialLayers() { return model.layers.filter(l => l.shape.length === 3 && l.op !== "dropout"); }

function imageLink(id, p) {
  const q = new URLSearchParams();
  for (const k of ["layer", "map", "y", "x", "mode"]) if (p[k] !== undefined && p[k] !== null && p[k] !== "") q.set(k, p[k]);
  return `#/image/${enc(id)}?${q}`;
}

async function upload(file) {
  const form = new FormData();
  form.append("image", file);
  const r = await api("/api/images", {method: "POST", body: form});
  go(imageLink(r.id, {}));
}

async function pickView() {
  const lib = await api("/api/library");
  const input = h("input", {type: "file", id: "file", accept: "image/*",
    onchange: e => e.target.files[0] && upload(e.target.files[0]).catch(err => showError(err.message))});
  const drop = h("div", {class: "drop", id: "drop"}, "Drop an image here, or ", input);
  drop.addEventListener("dragover", e => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", e => {
    e.preventDefault(); drop.classList.remove("over");
    if (e.dataTransfer.files[0]) upload(e.dataTransfer.files[0]).catch(err => showError(err.message));
  });
  const pick = async i => { try { go(imageLink((await api(`/api/library/${i}`, {method: "POST"})).id, {})); } catch (e) { showError(e.message); } };
  return h("div", {},
    h("h2", {}, "Your image"), drop,
    lib.images.length ? [h("h3", {}, "Or one from --images"),
      h("div", {class: "library"}, lib.images.map(im => h("button", {onclick: () => pick(im.index)}, im.name)))] : null);
}

async function imageView(id, q, rid) {
  if (!id) return pickView();
  const layers = spatialLayers();
  const layer = q.get("layer") || (model.scans[0] && model.scans[0].layer) || layers[layers.length - 1].name;
  const mode = q.get("mode") || "deconvnet";
  const [cls, strongest] = await Promise.all([
    model.classifier ? api(`/api/images/${enc(id)}/classify`) : {top: []},
    api(`/api/images/${enc(id)}/maps?layer=${enc(layer)}&k=12`)]);
  const map = q.has("map") ? parseInt(q.get("map"), 10) : strongest.maps[0].map;
  const state = {layer, map, mode, y: q.get("y"), x: q.get("x")};
  const base = `/api/images/${enc(id)}`;

  const box = h("div", {class: "box", id: "rf", hidden: true});
  const heat = h("img", {class: "heat", id: "heat", alt: "activation", src: `${base}/activation.png?layer=${enc(layer)}&map=${map}`});
  const occ = h("img", {class: "heat", id: "occlusion-map", alt: "occlusion", hidden: true});
  const stage = h("div", {class: "stage", id: "stage"}, h("img", {src: `${base}/input.png`, alt: strongest.name, id: "input"}), heat, occ, box);
  stage.addEventListener("click", e => {
    const r = stage.getBoundingClientRect();
    const [, H, W] = strongest.shape;
    const y = Math.min(H - 1, Math.floor((e.clientY - r.top) / r.height * H));
    const x = Math.min(W - 1, Math.floor((e.clientX - r.left) / r.width * W));
    go(imageLink(id, {...state, y, x}));
  });
  const proj = h("img", {class: "projection", id: "projection", alt: "projection"});
  const info = h("div", {id: "unit-info", class: "note"}, "Click a position on the image to project that unit of the chosen map.");
  const layerSelect = h("select", {id: "layer", onchange: e => go(imageLink(id, {layer: e.target.value, mode}))},
    layers.map(l => h("option", {value: l.name, selected: l.name === layer}, l.name)));
  const modeSelect = h("select", {id: "image-mode", onchange: e => go(imageLink(id, {...state, mode: e.target.value}))},
    model.modes.map(m => h("option", {value: m, selected: m === mode}, m)));
  const page = h("div", {},
    h("h2", {}, strongest.name),
    h("ol", {class: "top5", id: "top5"}, cls.top.map(c => h("li", {}, `${(100 * c.prob).toFixed(2)}%  ${c.label}  (${c.index})`))),
    h("div", {class: "toolbar"}, h("label", {}, "layer ", layerSelect), h("label", {}, "mode ", modeSelect),
      h("a", {href: "#/image"}, "another image")),
    h("div", {class: "columns"},
      h("div", {}, h("div", {class: "note"}, `map ${map} of ${layer} over the image`), stage,
        model.classifier ? occlusionControls(id, occ) : null),
      h("div", {}, h("div", {class: "note"}, "projection"), proj, info),
      h("div", {}, h("div", {class: "note"}, `strongest maps of ${layer}`),
        h("div", {class: "strongest", id: "strongest"}, strongest.maps.map(m =>
          h("a", {href: imageLink(id, {layer, map: m.map, mode}), class: m.map === map ? "active" : null},
            h("img", {src: `${base}/activation.png?layer=${enc(layer)}&map=${m.map}`, alt: `map ${m.map}`}),
            `map ${m.map}: ${fmt(m.max)}`))))));
  if (state.y !== null && state.x !== null) projectUnit(base, state, proj, box, info, rid);
  return page;
}

async function projectUnit(base, s, proj, box, info, rid) {
  const url = `${base}/project?layer=${enc(s.layer)}&map=${s.map}&y=${s.y}&x=${s.x}&mode=${enc(s.mode)}`;
  try {
    const r = await fetch(url);
    if (!r.ok) throw new Error((await r.json()).error);
    const unit = JSON.parse(r.headers.get("X-ZFNet-Unit"));
    const blob = await r.blob();
    if (rid !== renderId) return;
    proj.src = URL.createObjectURL(blob);
    proj.dataset.unit = `${unit.layer}/${unit.map}/${unit.y}/${unit.x}/${unit.mode}`;
    const [, H, W] = model.input_shape;
    const [y0, y1, x0, x1] = unit.box;
    Object.assign(box.style, {top: `${100 * y0 / H}%`, left: `${100 * x0 / W}%`,
      height: `${100 * (y1 - y0) / H}%`, width: `${100 * (x1 - x0) / W}%`});
    box.hidden = false;
    info.textContent = `unit (y ${unit.y}, x ${unit.x}) of map ${unit.map}: activation ${fmt(unit.activation)}; ` +
      `receptive field rows ${y0}:${y1}, columns ${x0}:${x1} (${unit.mode})`;
  } catch (e) { showError(e.message); }
}

function occlusionControls(id, overlay) {
  const bar = h("progress", {id: "occlusion-progress", max: 1, value: 0, hidden: true});
  const status = h("span", {id: "occlusion-status", class: "note"});
  const run = async () => {
    try {
      button.disabled = true;
      const {job} = await api(`/api/images/${enc(id)}/occlusion`, {method: "POST"});
      bar.hidden = false;
      for (;;) {
        const s = await api(`/api/jobs/${job}`);
        bar.max = s.total; bar.value = s.done;
        status.textContent = `${s.done} / ${s.total} squares`;
        if (s.state === "failed") throw new Error(s.error);
        if (s.state === "finished") {
          const [, H, W] = model.input_shape;
          const e = s.extent;
          Object.assign(overlay.style, {top: `${100 * e.top / H}%`, left: `${100 * e.left / W}%`,
            height: `${100 * (e.bottom - e.top) / H}%`, width: `${100 * (e.right - e.left) / W}%`});
          overlay.src = `/api/jobs/${job}/occlusion.png`;
          overlay.hidden = false;
          status.textContent = `occlusion of "${s.target.label}" (p = ${fmt(s.target.prob)}): bright where a ` +
            `${s.size} px grey square lowers it most (lowest p = ${fmt(s.min_prob)})`;
          break;
        }
        await new Promise(r => setTimeout(r, 300));
      }
    } catch (e) { showError(e.message); } finally { button.disabled = false; }
  };
  const button = h("button", {id: "occlusion", onclick: run}, "Occlusion map of the top class");
  return h("div", {class: "toolbar"}, button, bar, status);
}

window.addEventListener("hashchange", route);
route();
