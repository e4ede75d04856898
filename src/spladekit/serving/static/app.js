// The search page of `spladekit serve`: calls /info, /search and /expand of the server that served it.
// Texts are inserted as text nodes (never as HTML), so document contents cannot inject markup.
"use strict";

const state = {apiKey: sessionStorage.getItem("spladekit-api-key") || "", info: null};

function $(id) { return document.getElementById(id); }

function element(tag, attributes = {}, children = []) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (name === "text") node.textContent = value;
    else if (name === "className") node.className = value;
    else node.setAttribute(name, value);
  }
  for (const child of children) node.append(child);
  return node;
}

function format(value, digits = 3) { return Number(value).toFixed(digits); }

async function api(path, body) {
  const headers = {};
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (state.apiKey) headers["Authorization"] = "Bearer " + state.apiKey;
  const response = await fetch(path, {method: body === undefined ? "GET" : "POST", headers,
                                      body: body === undefined ? undefined : JSON.stringify(body)});
  const data = await response.json().catch(() => null);
  if (!response.ok) {
    const error = new Error((data && data.error) || response.statusText);
    error.status = response.status;
    throw error;
  }
  return data;
}

function showStatus(message, isError = false) {
  const status = $("status");
  status.textContent = message;
  status.className = isError ? "error" : "muted";
}

async function loadInfo() {
  try {
    state.info = await api("info");
  } catch (error) {
    if (error.status === 401) {
      $("key-form").hidden = false;
      showStatus("This server needs an API key.", true);
    } else {
      showStatus("Cannot reach the server: " + error.message, true);
    }
    return;
  }
  const info = state.info;
  const index = info.index;
  $("server-info").textContent = `${info.model_id} · ${info.embedding_dimension} dimensions · ` +
    (index ? `${index.documents} documents${index.texts ? "" : " (no texts)"}` : "no index: expansion only");
  document.body.dataset.ready = "true";
}

function renderExpansion(terms) {
  const list = $("expansion");
  list.replaceChildren();
  const heaviest = terms.length ? terms[0].weight : 1;
  for (const term of terms) {
    const bar = element("span", {className: "bar"});
    bar.style.width = `${Math.max(4, 100 * term.weight / heaviest)}%`;
    list.append(element("li", {className: "term", "data-term": term.term, "data-weight": term.weight,
                               title: `weight ${format(term.weight)}`},
                        [element("span", {className: "term-name", text: term.term}),
                         element("span", {className: "term-weight", text: format(term.weight, 2)}), bar]));
  }
  $("expansion-section").hidden = false;
}

function describe(term, score) {
  const percent = score ? ` (${format(100 * term.share / score, 1)}% of the score)` : "";
  return `${term.term}: ${format(term.query_weight)} (query) × ${format(term.document_weight)} (document) = ` +
         `${format(term.share)}${percent}`;
}

// The document text with the spans of matched terms in <mark>, shaded by the term's share of the score.
function highlightedText(text, highlights, termsByIndex, score, maxShare) {
  const paragraph = element("p", {className: "text"});
  const characters = Array.from(text);  // offsets count code points, as the server's do
  let position = 0;
  for (const span of highlights) {
    if (span.start < position) continue;
    paragraph.append(characters.slice(position, span.start).join(""));
    const term = termsByIndex.get(span.index);
    const mark = element("mark", {className: "match", "data-term": span.term, "data-share": span.share,
                                  title: describe(term, score), text: characters.slice(span.start, span.end).join("")});
    const strength = maxShare > 0 ? 0.15 + 0.75 * Math.max(0, span.share) / maxShare : 0.15;
    mark.style.backgroundColor = `rgba(255, 166, 0, ${strength.toFixed(3)})`;
    paragraph.append(mark);
    position = span.end;
  }
  paragraph.append(characters.slice(position).join(""));
  return paragraph;
}

function decompositionTable(hit) {
  const rows = hit.terms.map((term) => element("tr", {"data-term": term.term}, [
    element("td", {text: term.term}), element("td", {text: format(term.query_weight)}),
    element("td", {text: format(term.document_weight)}), element("td", {text: format(term.share)}),
    element("td", {text: hit.score ? format(100 * term.share / hit.score, 1) + "%" : ""})]));
  const total = hit.terms.reduce((sum, term) => sum + term.share, 0);
  return element("table", {className: "decomposition", hidden: ""}, [
    element("thead", {}, [element("tr", {}, ["term", "query weight", "document weight", "share", "of score"].map(
      (name) => element("th", {text: name})))]),
    element("tbody", {}, rows),
    element("tfoot", {}, [element("tr", {}, [element("td", {text: "sum"}), element("td"), element("td"),
                                             element("td", {text: format(total)}), element("td")])])]);
}

function renderHits(hits) {
  const list = $("hits");
  list.replaceChildren();
  for (const hit of hits) {
    const terms = hit.terms || [];
    const termsByIndex = new Map(terms.map((term) => [term.index, term]));
    const maxShare = terms.reduce((max, term) => Math.max(max, term.share), 0);
    const table = decompositionTable(hit);
    const scoreButton = element("button", {className: "score", type: "button", text: format(hit.score),
                                           title: "score = the sum of the shares; click for the decomposition"});
    scoreButton.addEventListener("click", () => { table.hidden = !table.hidden; });
    const item = element("li", {className: "hit", "data-id": String(hit.id), "data-score": hit.score},
                         [element("div", {className: "hit-header"},
                                  [element("span", {className: "hit-id", text: String(hit.id)}), scoreButton])]);
    const inText = new Set();
    if (hit.text != null) {
      const highlights = hit.highlights || [];
      highlights.forEach((span) => inText.add(span.index));
      item.append(highlightedText(hit.text, highlights, termsByIndex, hit.score, maxShare));
    }
    const elsewhere = terms.filter((term) => !inText.has(term.index));
    if (elsewhere.length) {
      item.append(element("p", {className: "expansion-matches"}, [
        element("span", {className: "muted", text: hit.text != null ? "also matched (expansion terms, not in the text): "
                                                                    : "matched terms: "}),
        ...elsewhere.map((term) => element("span", {className: "expansion-match", "data-term": term.term,
                                                    title: describe(term, hit.score), text: term.term}))]));
    }
    item.append(table);
    list.append(item);
  }
  $("hits-section").hidden = false;
}

async function search(event) {
  event.preventDefault();
  const query = $("query").value.trim();
  if (!query) return;
  const info = state.info;
  showStatus("Searching…");
  try {
    if (!info || !info.index) {
      const expansion = await api("expand", {text: query, task: "query"});
      renderExpansion(expansion.terms);
      showStatus(`${expansion.active_dims} terms`);
      return;
    }
    const withText = Boolean(info.index.texts);
    const body = {query, top_k: Number($("top-k").value), explain: true, highlight: withText, return_text: withText};
    const prefix = $("id-prefix").value.trim();
    if (prefix) body.id_prefix = prefix;
    const started = performance.now();
    const response = await api("search", body);
    const result = response.results[0];
    renderExpansion(result.query_terms || []);
    renderHits(result.hits);
    showStatus(`${result.hits.length} hits in ${Math.round(performance.now() - started)} ms`);
    document.body.dataset.searched = query;
  } catch (error) {
    showStatus(error.message, true);
    if (error.status === 401) $("key-form").hidden = false;
  }
}

$("search-form").addEventListener("submit", search);
$("key-form").addEventListener("submit", (event) => {
  event.preventDefault();
  state.apiKey = $("api-key").value;
  sessionStorage.setItem("spladekit-api-key", state.apiKey);
  $("key-form").hidden = true;
  showStatus("");
  loadInfo();
});
loadInfo();
