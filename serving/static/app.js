// Calls the JSON API of the same server; no framework, no external resources (works offline).
"use strict";
const $ = (id) => document.getElementById(id);

async function api(path) {
  const response = await fetch(path);
  const body = await response.json();
  if (!response.ok) throw new Error(body.detail || response.statusText);
  return body;
}

// Each list shows the answer to the latest request made for it: when a slower, earlier answer arrives after
// it (a genre picked, then "only new" ticked at once), it is dropped (null) instead of replacing it.
const lastAsked = {};
async function latest(list, path) {
  const ticket = (lastAsked[list] = (lastAsked[list] || 0) + 1);
  try {
    const body = await api(path);
    return ticket === lastAsked[list] ? body : null;
  } catch (error) {
    if (ticket === lastAsked[list]) throw error;
    return null;
  }
}

const pageEvents = document.body.dataset.pageEvents === "on";

// Rate or dismiss a movie of the list on display (only where the service lets the page post: serving.page_events).
function actions(item) {
  const span = document.createElement("span");
  span.className = "actions";
  for (const [label, event] of [["★ 5", { type: "rating", rating: 5 }], ["Not interested", { type: "dismiss" }]]) {
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = label;
    button.addEventListener("click", (click) => { click.stopPropagation(); act(item, event); });
    span.append(button);
  }
  return span;
}

async function act(item, event) {
  const note = $("user-note");
  try {
    const response = await fetch("/demo/events", { method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ events: [{ user_id: viewer, movie_id: item.movie_id, ...event }] }) });
    if (!response.ok) throw new Error((await response.json()).detail || response.statusText);
    note.className = "muted";
    note.textContent = event.type === "dismiss" ? `${item.title}: hidden for good.` : `${item.title}: rated.`;
    // The speed layer folds a rating in within a second: ask again until the list says so.
    for (let tries = 0; tries < 10; tries++) {
      await new Promise((done) => setTimeout(done, 200));
      const body = await showUser(null, true);
      if (event.type === "dismiss" || (body && body.source === "fold_in")) break;
    }
  } catch (error) { note.textContent = error.message; note.className = "error"; }
}

function render(list, items, withActions = false) {
  list.replaceChildren(...items.map((item) => {
    const li = document.createElement("li");
    const title = document.createElement("span");
    title.className = "title";
    title.textContent = item.title + (item.year ? ` (${item.year})` : "");
    const meta = document.createElement("div");
    meta.className = "meta";
    // What helps a person choose: genres, how many rated it where that is the list's reason; a model's score
    // (an ALS dot product, a cosine) means nothing to them and is left to the API.
    const ratings = item.score === undefined ? item.n_ratings : Number.isInteger(item.score) ? item.score : null;
    meta.textContent = [(item.genres || []).join(", "), ratings === null ? null : `${ratings} ratings`,
      item.filled ? "popular pick" : null, item.new ? "new: nobody has rated it yet" : null]
      .filter(Boolean).join(" · ");
    li.append(title, meta);
    if (item.because) {
      const because = document.createElement("div");
      because.className = "because";
      because.textContent = `Because you rated ${item.because.title}`;
      li.append(because);
    }
    if (withActions && pageEvents && viewer) li.append(actions(item));
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
let diversity = 0;  // "Show me different ones" mixes genres; Recommend goes back to the list's own order

// The filters on display, as the API and the page's address take them.
function userFilters() {
  const shown = new URLSearchParams();
  const genre = $("user-genre").value;
  if (genre) shown.set("genre", genre);
  for (const name of ["year_min", "year_max"]) {
    const year = $(`user-${name.replace("_", "-")}`).value.trim();
    if (year) shown.set(name, year);
  }
  if (diversity) shown.set("diversity", diversity);
  return shown;
}

async function showUser(event, keepNote = false) {
  if (event) { event.preventDefault(); diversity = 0; }
  const note = $("user-note");
  const filters = userFilters();
  try {
    const body = await latest("user", `/v1/users/${encodeURIComponent($("user-id").value.trim())}/recommendations?k=10&${filters}`);
    if (!body) return null;
    if (!keepNote) note.className = "muted";
    const said = body.source === "fold_in"
      ? `Updated from what user ${body.user_id} just did (${body.fold_in.events} ratings and clicks since this version).`
      : body.fallback === "similar_to_recent"
      ? `User ${body.user_id} is new to this version: showing movies like the ones they rated most recently.`
      : body.fallback
        ? `No personal recommendations for user ${body.user_id} yet (${body.reason}): showing the most popular movies instead.`
        : body.filled
        ? `${body.filled} of these are popular picks: user ${body.user_id}'s own list had too few that match.`
        : "";
    if (!keepNote || said) note.textContent = said || (keepNote ? note.textContent : "");
    viewer = body.user_id;
    // The address names what is shown, so a view can be bookmarked, shared or reloaded.
    const address = new URLSearchParams({ user: body.user_id });
    for (const [name, value] of filters) address.set(name, value);
    history.replaceState(null, "", `?${address}`);
    $("user-experiment").textContent = body.experiment
      ? `Experiment ${body.experiment}: user ${body.user_id} is in the ${body.arm} arm (version ${body.version}).`
      : "";
    render($("user-results"), body.items, true);
    return body;
  } catch (error) { fail($("user-results"), note, error); }
}

async function showSimilar(item) {
  $("similar-title").textContent = `Similar to ${item.title}`;
  try {
    const forViewer = viewer ? `&user_id=${viewer}` : "";
    const body = await latest("similar", `/v1/movies/${item.movie_id}/similar?k=10${forViewer}`);
    if (!body) return;
    if (body.source === "content") {
      $("similar-title").textContent = `Like ${item.title} by its genres, years and tags (nobody has rated it yet)`;
    }
    render($("similar-results"), body.items);
  } catch (error) { fail($("similar-results"), $("similar-title"), error); }
}

async function showSearch(event) {
  if (event) event.preventDefault();
  const note = $("search-note");
  const q = $("search-q").value.trim();
  if (!q) return;
  try {
    const body = await latest("search", `/v1/movies?k=10&q=${encodeURIComponent(q)}`);
    if (!body) return;
    note.className = "muted";
    note.textContent = body.items.length ? "Click a result to see the movies most like it."
      : `No title has every word of “${q}”.`;
    render($("search-results"), body.items);
  } catch (error) { fail($("search-results"), note, error); }
}

async function showPopular() {
  const genre = $("popular-genre").value;
  const fresh = $("popular-new").checked;  // new movies, nearest the genre's most liked, instead of the most rated
  try {
    const body = await latest("popular", (fresh ? "/v1/new" : "/v1/popular") + "?k=10"
      + (genre ? `&genre=${encodeURIComponent(genre)}` : ""));
    if (!body) return;
    $("popular-note").textContent = fresh && !body.items.length ? "No new movies in this version." : "";
    render($("popular-results"), body.items);
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

// /?user=42&genre=Comedy&year_min=1990&diversity=0.7 opens on that view; an unknown genre is ignored (and a bad
// year or diversity gets the API's own message).
const asked = new URLSearchParams(location.search);
if (asked.get("user")) $("user-id").value = asked.get("user");
if ([...$("user-genre").options].some((option) => option.value === asked.get("genre"))) {
  $("user-genre").value = asked.get("genre");
}
if (asked.get("year_min")) $("user-year-min").value = asked.get("year_min");
if (asked.get("year_max")) $("user-year-max").value = asked.get("year_max");
if (asked.get("diversity")) diversity = asked.get("diversity");

$("user-form").addEventListener("submit", showUser);
$("user-different").addEventListener("click", () => { diversity = 0.7; showUser(null); });
$("search-form").addEventListener("submit", showSearch);
$("popular-genre").addEventListener("change", showPopular);
$("popular-new").addEventListener("change", showPopular);
showVersion();
showUser();
showPopular();
