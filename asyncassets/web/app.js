// The live page of asyncassets: the cards, a resolved card, the problems; it follows /events.
// Plain script, no build step. Card data is only ever put into the page as text.
"use strict";

const state = { cards: [], selected: null, flash: new Set(), readyLoop: false };
const $ = (id) => document.getElementById(id);
// URLs relative to the page, so that the app works mounted under any prefix.
const api = (path) => new URL(path, document.baseURI).toString();

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(key, value);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

async function getJSON(path) {
  const response = await fetch(api(path), { headers: { Accept: "application/json" } });
  const body = await response.json();
  return { status: response.status, body };
}

// Only the answer to the latest request of each kind is shown: under a burst of events an
// older response that arrives late must not overwrite a newer one.
const latest = {};
async function getLatest(key, path) {
  const ticket = (latest[key] = (latest[key] || 0) + 1);
  const answer = await getJSON(path);
  return ticket === latest[key] ? answer : null;
}

// A failed refresh (the server is away) is retried by the next event or reconnection.
function quietly(promise) {
  return promise.catch((error) => console.debug("asyncassets:", error));
}

function shortSource(source) {
  const path = source.replace(/^file:\/\//, "");
  const parts = path.split("/");
  return parts.length > 2 ? "…/" + parts.slice(-2).join("/") : path;
}

function matches(card, needle, kind) {
  if (kind && card.kind !== kind) return false;
  if (!needle) return true;
  const text = [card.name, card.family, card.kind, card.source].join(" ").toLowerCase();
  return needle.split(/\s+/).every((word) => text.includes(word));
}

function renderCards() {
  const needle = $("filter").value.trim().toLowerCase();
  const kind = $("kind").value;
  const rows = state.cards.filter((card) => matches(card, needle, kind));
  const body = $("cards").tBodies[0];
  body.replaceChildren(
    ...rows.map((card) => {
      const row = el(
        "tr",
        { dataset: { name: card.name }, title: card.error || card.source },
        el("td", { class: "name" }, card.name),
        el("td", {}, el("span", { class: `kind ${card.kind}` }, card.kind)),
        el("td", {}, card.family || ""),
        el("td", { class: "source" }, shortSource(card.source || "")),
      );
      if (card.name === state.selected) row.classList.add("selected");
      if (state.flash.has(card.name)) {
        row.classList.add("flash");
        requestAnimationFrame(() => requestAnimationFrame(() => row.classList.remove("flash")));
      }
      row.addEventListener("click", () => select(card.name));
      return row;
    }),
  );
  state.flash.clear();
  $("empty").hidden = rows.length > 0;
  $("count").textContent = `${rows.length} of ${state.cards.length} cards`;
}

async function loadCards() {
  const answer = await getLatest("cards", "cards");
  if (!answer) return;
  state.cards = answer.body.cards;
  renderCards();
}

async function loadProblems() {
  const answer = await getLatest("problems", "problems");
  if (!answer) return;
  const { body } = answer;
  $("problems").replaceChildren(...body.problems.map((p) => el("li", {}, p.text)));
  const count = $("problem-count");
  count.textContent = String(body.count);
  count.classList.toggle("bad", body.count > 0);
}

function pretty(value) {
  return el("pre", {}, JSON.stringify(value, null, 2));
}

async function select(name) {
  state.selected = name;
  for (const row of $("cards").tBodies[0].rows) {
    row.classList.toggle("selected", row.dataset.name === name);
  }
  await showDetail();
}

async function showDetail() {
  const name = state.selected;
  const detail = $("detail");
  if (!name) return;
  const answer = await getLatest("detail", `cards/${encodeURIComponent(name)}`);
  if (!answer || name !== state.selected) return; // another card was chosen meanwhile
  const { status, body } = answer;
  detail.dataset.name = name;
  if (status !== 200) {
    // 404: gone (or never was), with close matches; 422: it does not resolve.
    detail.dataset.state = status === 404 ? "missing" : "error";
    const hint = body.close_matches && body.close_matches.length
      ? `Close matches: ${body.close_matches.join(", ")}` : null;
    detail.replaceChildren(
      el("h2", {}, name),
      el("p", { class: "error" }, body.error),
      hint && el("p", { class: "muted" }, hint),
    );
    return;
  }
  detail.dataset.state = "resolved";
  detail.replaceChildren(
    el("h2", {}, body.name, " ", el("span", { class: `kind ${body.kind}` }, body.kind)),
    el("div", { class: "source" }, body.source),
    el("h3", {}, "resolved fields"),
    pretty(body.metadata),
    el("h3", {}, `base chain (${body.chain.length})`),
    el(
      "ol",
      { class: "chain" },
      ...body.chain.map((link) =>
        el(
          "li",
          { dataset: { name: link.name } },
          el("span", { class: "link-name" }, link.name),
          " ",
          el("span", { class: "muted" }, shortSource(link.source)),
          pretty(link.fields),
        ),
      ),
    ),
  );
}

async function refreshReady() {
  const badge = $("ready");
  try {
    const { status, body } = await getJSON("readyz");
    const failed = Object.values(body.prefetch || {}).filter((p) => p.state === "failed");
    if (status === 200) {
      badge.textContent = "ready";
      badge.className = "badge ok";
      return true;
    }
    const running = Object.entries(body.prefetch || {}).map(([name, p]) =>
      p.total ? `${name} ${Math.floor((100 * p.done) / p.total)}%` : `${name} ${p.state}`);
    badge.textContent = failed.length ? "prefetch failed" : running.length ? `prefetching ${running.join(", ")}` : "loading";
    badge.className = failed.length ? "badge bad" : "badge pending";
  } catch (error) {
    badge.textContent = "unreachable";
    badge.className = "badge bad";
  }
  return false;
}

// Polls /readyz once a second until the app is ready (again after every reconnection:
// a restarted server loads and prefetches anew).
async function watchReady() {
  if (state.readyLoop) return;
  state.readyLoop = true;
  try {
    while (!(await refreshReady())) await new Promise((resolve) => setTimeout(resolve, 1000));
  } finally {
    state.readyLoop = false;
  }
}

function follow() {
  const live = $("live");
  // EventSource reconnects by itself (the server's "retry:" sets the delay).
  const events = new EventSource(api("events"));
  events.addEventListener("open", () => {
    live.textContent = "live";
    live.className = "badge ok";
    // Anything may have changed while we were away.
    quietly(Promise.all([loadCards(), loadProblems(), state.selected ? showDetail() : null]));
    watchReady();
  });
  events.addEventListener("error", () => {
    live.textContent = "reconnecting…";
    live.className = "badge off";
  });
  events.addEventListener("change", (message) => {
    const event = JSON.parse(message.data);
    const plain = (names) => (names || []).map((name) => name.split("@")[0]);
    const changed = [...plain(event.added), ...plain(event.modified)];
    changed.forEach((name) => state.flash.add(name));
    const gone = plain(event.removed);
    const jobs = [loadCards(), loadProblems()];
    // A card's resolution depends on its bases: any change may alter the open one.
    if (state.selected && (changed.length || gone.length)) jobs.push(showDetail());
    quietly(Promise.all(jobs));
  });
}

$("filter").addEventListener("input", renderCards);
$("kind").addEventListener("change", renderCards);

quietly(Promise.all([loadCards(), loadProblems()]));
follow();
watchReady();
