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
    const score = item.score === undefined ? `${item.n_ratings} ratings`
      : Number.isInteger(item.score) ? `${item.score} ratings` : `score ${Number(item.score).toFixed(3)}`;
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

let viewer = null;  // the user on display: similar movies then come from their arm's version

async function showUser(event) {
  if (event) event.preventDefault();
  const note = $("user-note");
  const genre = $("user-genre").value;
  try {
    const body = await api(`/v1/users/${encodeURIComponent($("user-id").value.trim())}/recommendations?k=10`
      + (genre ? `&genre=${encodeURIComponent(genre)}` : ""));
    note.className = "muted";
    note.textContent = body.fallback === "similar_to_recent"
      ? `User ${body.user_id} is new to this version: showing movies like the ones they rated most recently.`
      : body.fallback
        ? `No personal recommendations for user ${body.user_id} yet (${body.reason}): showing the most popular movies instead.`
        : "";
    viewer = body.user_id;
    // The address names what is shown, so a view can be bookmarked, shared or reloaded.
    const shown = new URLSearchParams({ user: body.user_id });
    if (genre) shown.set("genre", genre);
    history.replaceState(null, "", `?${shown}`);
    $("user-experiment").textContent = body.experiment
      ? `Experiment ${body.experiment}: user ${body.user_id} is in the ${body.arm} arm (version ${body.version}).`
      : "";
    render($("user-results"), body.items);
  } catch (error) { fail($("user-results"), note, error); }
}

async function showSimilar(item) {
  $("similar-title").textContent = `Similar to ${item.title}`;
  try {
    const forViewer = viewer ? `&user_id=${viewer}` : "";
    render($("similar-results"), (await api(`/v1/movies/${item.movie_id}/similar?k=10${forViewer}`)).items);
  } catch (error) { fail($("similar-results"), $("similar-title"), error); }
}

async function showSearch(event) {
  if (event) event.preventDefault();
  const note = $("search-note");
  const q = $("search-q").value.trim();
  if (!q) return;
  try {
    const body = await api(`/v1/movies?k=10&q=${encodeURIComponent(q)}`);
    note.className = "muted";
    note.textContent = body.items.length ? "Click a result to see the movies most like it."
      : `No title has every word of “${q}”.`;
    render($("search-results"), body.items);
  } catch (error) { fail($("search-results"), note, error); }
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
    const running = meta.experiment;
    $("version").textContent = `Version ${meta.version} · ${meta.dataset} · trained ${meta.trained_at}`
      + (ndcg ? ` · NDCG@10 ${ndcg.toFixed(3)}` : "")
      + (running ? ` · experiment ${running.id} running: version ${running.treatment} for `
        + `${Math.round(running.share * 100)}% of users` : "");
  } catch (error) { $("version").textContent = error.message; $("version").className = "error"; }
}

// /?user=42&genre=Comedy opens on that user (and genre); an unknown genre is ignored.
const asked = new URLSearchParams(location.search);
if (asked.get("user")) $("user-id").value = asked.get("user");
if ([...$("user-genre").options].some((option) => option.value === asked.get("genre"))) {
  $("user-genre").value = asked.get("genre");
}

$("user-form").addEventListener("submit", showUser);
$("search-form").addEventListener("submit", showSearch);
$("popular-genre").addEventListener("change", showPopular);
showVersion();
showUser();
showPopular();
