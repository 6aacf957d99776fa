// Renders /openapi.json of the server that served this page: routes grouped by tag, with their
// parameters, request bodies, responses and schemas. No library, no network beyond this server.
"use strict";
(function () {
  const content = document.getElementById("content");
  let spec = null;

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (key === "class") node.className = value; else node.setAttribute(key, value);
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  // Follows a local $ref ("#/components/...") once, for display.
  function deref(value) {
    if (value && typeof value === "object" && typeof value.$ref === "string" && value.$ref.startsWith("#/")) {
      let node = spec;
      for (const part of value.$ref.slice(2).split("/")) node = node ? node[part.replace(/~1/g, "/").replace(/~0/g, "~")] : undefined;
      return node || value;
    }
    return value;
  }

  // A schema with its component references expanded (up to a depth, cycles shown as refs).
  function expand(schema, depth, seen) {
    if (Array.isArray(schema)) return schema.map((item) => expand(item, depth, seen));
    if (!schema || typeof schema !== "object") return schema;
    if (typeof schema.$ref === "string") {
      if (depth > 6 || seen.has(schema.$ref)) return { $ref: schema.$ref };
      const next = new Set(seen); next.add(schema.$ref);
      return expand(deref(schema), depth + 1, next);
    }
    const out = {};
    for (const [key, value] of Object.entries(schema)) out[key] = expand(value, depth, seen);
    return out;
  }

  function schemaBlock(schema) {
    return el("pre", {}, JSON.stringify(expand(schema, 0, new Set()), null, 2));
  }

  function security(op) {
    const reqs = op.security || spec.security || [];
    if (reqs.length === 0) return "public";
    if (reqs.some((r) => Object.keys(r).length === 0)) return "credentials optional";
    return "needs " + reqs.map((r) => Object.keys(r).join(" + ")).join(" or ");
  }

  function parameters(op) {
    const params = (op.parameters || []).map(deref);
    if (params.length === 0) return null;
    return [el("h4", {}, "Parameters"), el("table", {},
      el("tr", {}, el("th", {}, "name"), el("th", {}, "in"), el("th", {}, "schema"), el("th", {}, "")),
      params.map((p) => el("tr", {},
        el("td", {}, el("code", {}, p.name), p.required ? " *" : ""),
        el("td", {}, p.in),
        el("td", {}, el("code", {}, JSON.stringify(p.schema || {}))),
        el("td", {}, p.description || ""))))];
  }

  function body(op) {
    const request = deref(op.requestBody);
    if (!request || !request.content) return null;
    return [el("h4", {}, "Request body" + (request.required ? " (required)" : "")),
      Object.entries(request.content).map(([media, item]) => [el("div", {}, el("code", {}, media)), schemaBlock(item.schema || {})])];
  }

  function responses(op) {
    const rows = Object.entries(op.responses || {}).sort(([a], [b]) => a.localeCompare(b));
    return [el("h4", {}, "Responses"), rows.map(([status, raw]) => {
      const response = deref(raw);
      const media = Object.entries(response.content || {});
      const inner = media.map(([type, item]) => [el("div", {}, el("code", {}, type)), item.schema ? schemaBlock(item.schema) : null]);
      return el("details", {}, el("summary", {}, el("span", { class: "status s" + status[0] }, status), " ", response.description || ""), inner);
    })];
  }

  function operation(path, method, op) {
    const id = "op-" + (op.operationId || method + path).replace(/[^A-Za-z0-9_-]/g, "_");
    return el("details", { class: "op", id, "data-search": [method, path, op.summary, (op.tags || []).join(" ")].join(" ").toLowerCase() },
      el("summary", {}, el("span", { class: "method " + method }, method), el("span", { class: "path" }, path),
        el("span", {}, op.summary || ""), el("span", { class: "lock" }, security(op))),
      el("div", {}, op.description ? el("p", {}, op.description) : null, parameters(op), body(op), responses(op)));
  }

  function render() {
    document.getElementById("title").textContent = (spec.info.title || "API") + " " + (spec.info.version || "");
    document.getElementById("info").textContent = spec.info.description || "";
    const byTag = new Map((spec.tags || []).map((t) => [t.name, { tag: t, ops: [] }]));
    for (const [path, item] of Object.entries(spec.paths || {})) {
      for (const [method, op] of Object.entries(item)) {
        const tag = (op.tags && op.tags[0]) || "other";
        if (!byTag.has(tag)) byTag.set(tag, { tag: { name: tag }, ops: [] });
        byTag.get(tag).ops.push([path, method, op]);
      }
    }
    const toc = document.getElementById("toc");
    content.replaceChildren();
    for (const { tag, ops } of byTag.values()) {
      if (ops.length === 0) continue;
      toc.append(el("h3", {}, tag.name));
      for (const [path, method, op] of ops) {
        const node = operation(path, method, op);
        toc.append(el("a", { href: "#" + node.id }, method.toUpperCase() + " " + path));
      }
      content.append(el("section", { class: "tag" }, el("h2", {}, tag.name),
        tag.description ? el("p", { class: "muted" }, tag.description) : null,
        ops.map(([path, method, op]) => operation(path, method, op))));
    }
    const schemas = Object.entries((spec.components || {}).schemas || {});
    content.append(el("section", { class: "tag" }, el("h2", {}, "Schemas"),
      schemas.map(([name, schema]) => el("details", { class: "op", id: "schema-" + name },
        el("summary", {}, el("span", { class: "path" }, name)), el("div", {}, schemaBlock(schema))))));
    if (location.hash) {
      const target = document.getElementById(location.hash.slice(1));
      if (target) { target.open = true; target.scrollIntoView(); }
    }
  }

  document.getElementById("filter").addEventListener("input", (event) => {
    const words = event.target.value.toLowerCase().split(/\s+/).filter(Boolean);
    for (const node of content.querySelectorAll("details.op[data-search]")) {
      node.hidden = !words.every((w) => node.dataset.search.includes(w));
    }
  });
  document.getElementById("toc").addEventListener("click", (event) => {
    const link = event.target.closest("a");
    const target = link && document.getElementById(link.getAttribute("href").slice(1));
    if (target) target.open = true;
  });

  fetch("/openapi.json", { credentials: "same-origin" })
    .then((response) => { if (!response.ok) throw new Error("HTTP " + response.status); return response.json(); })
    .then((document) => { spec = document; render(); })
    .catch((error) => { content.replaceChildren(el("p", {}, "Could not load /openapi.json: " + error.message)); });
})();
