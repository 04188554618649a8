// Calls the JSON API of the same server; no framework, no external resources (works offline).
"use strict";
const $ = (id) => document.getElementById(id);

async function api(path) {
  const response = await fetch(path);
  const body = await response.json();
  if (!response.ok) throw new Error(body.detail || response.statusText);
  return body;
}

function render(list, items) {
  list.replaceChildren(...items.map((item) => {
    const li = document.createElement("li");
    const title = document.createElement("span");
    title.className = "title";
    title.textContent = item.title + (item.year ? ` (${item.year})` : "");
    const meta = document.createElement("div");
    meta.className = "meta";
    const score = Number.isInteger(item.score) ? `${item.score} ratings` : `score ${Number(item.score).toFixed(3)}`;
    meta.textContent = `${(item.genres || []).join(", ")} · ${score}`;
    li.append(title, meta);
    li.addEventListener("click", () => showSimilar(item));
    return li;
  }));
}

function fail(list, note, error) {
  list.replaceChildren();
  note.textContent = error.message;
  note.className = "error";
}

async function showUser(event) {
  if (event) event.preventDefault();
  const note = $("user-note");
  const genre = $("user-genre").value;
  try {
    const body = await api(`/v1/users/${encodeURIComponent($("user-id").value.trim())}/recommendations?k=10`
      + (genre ? `&genre=${encodeURIComponent(genre)}` : ""));
    note.className = "muted";
    note.textContent = body.fallback ? `Unknown user: showing popular movies (${body.reason}).` : "";
    render($("user-results"), body.items);
  } catch (error) { fail($("user-results"), note, error); }
}

async function showSimilar(item) {
  $("similar-title").textContent = `Similar to ${item.title}`;
  try {
    render($("similar-results"), (await api(`/v1/movies/${item.movie_id}/similar?k=10`)).items);
  } catch (error) { fail($("similar-results"), $("similar-title"), error); }
}

async function showPopular() {
  const genre = $("popular-genre").value;
  try {
    render($("popular-results"), (await api("/v1/popular?k=10" + (genre ? `&genre=${encodeURIComponent(genre)}` : ""))).items);
  } catch (error) { fail($("popular-results"), $("version"), error); }
}

async function showVersion() {
  try {
    const meta = await api("/v1/version");
    const ndcg = meta.metrics && meta.metrics["ndcg@10"];
    $("version").textContent = `Version ${meta.version} · ${meta.dataset} · trained ${meta.trained_at}`
      + (ndcg ? ` · NDCG@10 ${ndcg.toFixed(3)}` : "");
  } catch (error) { $("version").textContent = error.message; $("version").className = "error"; }
}

$("user-form").addEventListener("submit", showUser);
$("popular-genre").addEventListener("change", showPopular);
showVersion();
showUser();
showPopular();
