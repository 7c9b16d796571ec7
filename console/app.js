// The operator console: tiers and their slots, the account cap, the jobs (filterable by tenant, tier and
// status) and one job's path through the state machine beside its timeline. Everything it shows is read
// from the status API with an operator key, every POLL_MS; the state machine is drawn from its ASL file.

import { StatusApi } from "./api.js";
import { layout, render } from "./graph.js";

const POLL_MS = 2000;
const TENANTS_EVERY = 5; // polls between two reads of the tenant list
const MAX_TENANTS_FANNED = 25; // "all tenants" reads the newest jobs of at most this many tenants per poll
// controlplane.jobs.lifecycle.JobStatus, in its order (tests/unit/test_console_files.py holds them equal).
const STATUSES = ["RECEIVED", "VALIDATED", "QUEUED", "ADMITTED", "RUNNING", "SUCCEEDED", "FAILED", "STOPPED", "REJECTED", "EXPIRED", "CANCELLED"];
const ASL_URL = "../statemachines/training_job.asl.json";

const $ = (selector) => document.querySelector(selector);

function make(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(String(child ?? "")));
  return node;
}

function fragment() {
  return new URLSearchParams(location.hash.replace(/^#/, ""));
}

function setFragment(changes) {
  const params = fragment();
  for (const [key, value] of Object.entries(changes)) {
    if (value) params.set(key, value);
    else params.delete(key);
  }
  history.replaceState(null, "", `#${params}`);
}

function when(text) {
  if (!text) return "";
  const date = new Date(text);
  return Number.isNaN(date.getTime()) ? text : date.toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
}

function seconds(from, to) {
  if (!from) return "";
  const end = to ? new Date(to) : new Date();
  const value = (end - new Date(from)) / 1000;
  return Number.isFinite(value) ? `${value.toFixed(1)} s${to ? "" : " so far"}` : "";
}

const state = {
  api: null,
  asl: null,
  graph: null,
  tenants: [],
  tenantsComplete: true,
  jobs: [],
  selected: null, // {tenantId, jobId}
  polls: 0,
  timer: null,
};

// ------------------------------------------------------------------ tiers and the account

function slotCells(tier, accountFree) {
  const guaranteed = tier.concurrencyLimit;
  const limit = guaranteed + (tier.borrowingLimit || 0);
  const running = tier.running;
  const cells = make("div", { class: "slots", "aria-label": `${running} of ${limit} slots in use` });
  for (let slot = 0; slot < Math.max(limit, running); slot += 1) {
    let kind;
    if (slot < running) kind = slot < guaranteed ? "own" : "borrowed";
    else if (slot < guaranteed) kind = "free";
    else kind = slot - running < accountFree ? "borrowable" : "unavailable";
    cells.append(make("span", { class: `slot ${kind}`, title: kind }));
  }
  return cells;
}

function renderTiers(listing) {
  const account = listing.account;
  const accountFree = account ? Math.max(0, account.accountCap - account.running) : Infinity;
  const rows = listing.items.map((tier) => {
    const borrowed = Math.max(0, tier.running - tier.concurrencyLimit);
    const free = Math.max(0, Math.min(tier.concurrencyLimit + (tier.borrowingLimit || 0) - tier.running, accountFree));
    return make(
      "tr",
      { "data-tier": tier.tier },
      make("th", { scope: "row" }, tier.tier),
      make("td", {}, slotCells(tier, accountFree)),
      make("td", { class: "number", "data-field": "running" }, tier.running),
      make("td", { class: "number", "data-field": "guaranteed" }, tier.concurrencyLimit),
      make("td", { class: "number", "data-field": "borrowed" }, `${borrowed} / ${tier.borrowingLimit || 0}`),
      make("td", { class: "number", "data-field": "free" }, free),
      make("td", { class: "number", "data-field": "queued" }, tier.queued),
    );
  });
  $("#tiers tbody").replaceChildren(...rows);
  $("#account").replaceChildren(
    account
      ? make(
          "span",
          {},
          "Account cap ",
          make("strong", { "data-field": "accountCap" }, account.accountCap),
          ": ",
          make("strong", { "data-field": "accountRunning" }, account.running),
          " running, ",
          account.guaranteed,
          " guaranteed across tiers, ",
          Math.max(0, account.accountCap - account.running),
          " free",
        )
      : "The account has no settings yet.",
  );
}

// ------------------------------------------------------------------ jobs

function fillSelect(select, values, label) {
  // The filter in the URL fragment (by-tenant, by-tier, by-status) wins until the list holds it.
  const current = select.value || fragment().get(select.dataset.param) || "";
  select.replaceChildren(make("option", { value: "" }, label), ...values.map((value) => make("option", { value }, value)));
  select.value = values.includes(current) ? current : "";
}

function filters() {
  return { tenant: $("#filter-tenant").value, tier: $("#filter-tier").value, status: $("#filter-status").value };
}

async function readJobs() {
  const { tenant, tier, status } = filters();
  let tenants = tenant ? [tenant] : state.tenants.map((t) => t.tenantId);
  if (tier && !tenant) tenants = state.tenants.filter((t) => t.tier === tier).map((t) => t.tenantId);
  const fanned = tenants.slice(0, MAX_TENANTS_FANNED);
  const pages = await Promise.all(
    fanned.map(async (tenantId) => (await state.api.tenantJobs(tenantId, status)).items.map((job) => ({ ...job, tenantId }))),
  );
  const jobs = pages.flat().filter((job) => !tier || job.tier === tier);
  jobs.sort((a, b) => (b.createdAt || "").localeCompare(a.createdAt || ""));
  state.jobs = jobs;
  const notes = [];
  if (tenants.length > fanned.length) notes.push(`the newest jobs of the first ${fanned.length} of ${tenants.length} tenants: pick a tenant to see others`);
  if (!state.tenantsComplete) notes.push("more tenants exist than the console lists");
  $("#jobs-note").textContent = notes.join("; ");
}

function renderJobs() {
  const rows = state.jobs.map((job) => {
    const selected = state.selected && state.selected.jobId === job.jobId;
    return make(
      "tr",
      {
        "data-job": job.jobId,
        "data-status": job.status,
        class: selected ? "selected" : "",
        tabindex: 0,
        onclick: () => select(job.tenantId, job.jobId),
        onkeydown: (event) => event.key === "Enter" && select(job.tenantId, job.jobId),
      },
      make("td", { class: "mono", title: job.jobId }, job.jobId.slice(0, 16) + "…"),
      make("td", {}, job.tenantId),
      make("td", {}, job.tier || ""),
      make("td", {}, make("span", { class: `status ${job.status}` }, job.status)),
      make("td", { class: "key", title: job.key || "" }, (job.key || "").split("/").pop()),
      make("td", {}, when(job.createdAt)),
      make("td", {}, when(job.updatedAt)),
    );
  });
  $("#jobs tbody").replaceChildren(...rows);
  $("#jobs-empty").hidden = rows.length > 0;
}

// ------------------------------------------------------------------ one job

function select(tenantId, jobId) {
  state.selected = { tenantId, jobId };
  setFragment({ tenant: tenantId, job: jobId });
  renderJobs();
  refreshJob().catch(showError);
}

function visitRows(path) {
  return (path?.visits || []).map((visit) => {
    const current = path.current.includes(visit.name) && !visit.exitedAt;
    return make(
      "li",
      { class: `visit ${visit.error ? "failed" : current ? "current" : "visited"}`, "data-state": visit.name },
      make("span", { class: "visit-name" }, visit.name),
      make("span", { class: "visit-type" }, visit.type),
      make("span", { class: "visit-time" }, `${when(visit.enteredAt)} · ${seconds(visit.enteredAt, visit.exitedAt)}`),
      visit.error ? make("span", { class: "visit-error" }, `${visit.error}${visit.cause ? `: ${visit.cause}` : ""}`) : "",
    );
  });
}

function renderJob(job, path, pathProblem) {
  $("#job").hidden = false;
  $("#job-title").textContent = job.jobId;
  const status = $("#job-status");
  status.textContent = job.status;
  status.className = `status ${job.status}`;
  status.dataset.status = job.status;
  const facts = [
    ["tenant", state.selected.tenantId],
    ["tier", job.tier],
    ["upload", job.key],
    ["created", when(job.createdAt)],
    ["admitted", when(job.admittedAt)],
    ["finished", when(job.finishedAt)],
    ["execution", path ? `${path.status}${path.stoppedAt ? ` at ${when(path.stoppedAt)}` : ""}` : pathProblem || ""],
    ["execution ARN", job.executionArn],
    ["pipeline execution", job.pipelineExecutionArn],
  ].filter(([, value]) => value);
  $("#job-facts").replaceChildren(...facts.flatMap(([name, value]) => [make("dt", {}, name), make("dd", {}, value)]));
  $("#job-reasons").replaceChildren(...(job.reasons || []).map((reason) => make("li", {}, reason)));
  $("#job-timeline tbody").replaceChildren(
    ...(job.timeline || []).map((entry) =>
      make(
        "tr",
        {},
        make("td", {}, when(entry.at)),
        make("td", {}, make("span", { class: `status ${entry.status}` }, entry.status)),
        make("td", {}, entry.state || ""),
        make("td", {}, entry.reason || ""),
      ),
    ),
  );
  $("#job-visits").replaceChildren(...visitRows(path));
  const svg = render(state.graph, path, (name) => {
    const row = document.querySelector(`#job-visits [data-state="${CSS.escape(name)}"]`);
    if (row) row.scrollIntoView({ block: "nearest" });
  });
  const box = $("#graph");
  box.dataset.scrollTop = String(box.scrollTop);
  box.dataset.scrollLeft = String(box.scrollLeft);
  box.replaceChildren(svg);
  // Keep the state the execution is in (or ended in) in view, once per state: a reader's scrolling wins.
  const last = path?.current?.[0] || path?.visits?.[path.visits.length - 1]?.name;
  const graphBox = $("#graph");
  const target = last && svg.querySelector(`[data-state="${CSS.escape(last)}"]`);
  if (target && graphBox.dataset.scrolledTo !== `${job.jobId}/${last}`) {
    graphBox.dataset.scrolledTo = `${job.jobId}/${last}`;
    target.scrollIntoView({ block: "center", inline: "center" });
  } else if (graphBox.dataset.scrollTop) {
    graphBox.scrollTop = Number(graphBox.dataset.scrollTop);
    graphBox.scrollLeft = Number(graphBox.dataset.scrollLeft);
  }
}

async function refreshJob() {
  if (!state.selected) return;
  const { tenantId, jobId } = state.selected;
  const job = await state.api.job(tenantId, jobId);
  let path = null;
  let problem = null;
  try {
    path = await state.api.execution(tenantId, jobId);
  } catch (error) {
    problem = error.message;
  }
  if (state.selected && state.selected.jobId === jobId) renderJob(job, path, problem);
}

// ------------------------------------------------------------------ polling

function showError(error) {
  $("#problem").textContent = error.message;
  $("#problem").hidden = false;
}

async function poll() {
  try {
    if (state.polls % TENANTS_EVERY === 0) {
      const listing = await state.api.tenants();
      state.tenants = listing.items;
      state.tenantsComplete = listing.complete;
      fillSelect($("#filter-tenant"), state.tenants.map((t) => t.tenantId), "every tenant");
    }
    state.polls += 1;
    const tiers = await state.api.tiers();
    renderTiers(tiers);
    fillSelect($("#filter-tier"), tiers.items.map((t) => t.tier), "every tier");
    await readJobs();
    renderJobs();
    await refreshJob();
    $("#problem").hidden = true;
    $("#refreshed").textContent = `updated ${new Date().toLocaleTimeString()}`;
    document.body.dataset.polls = String(state.polls);
  } catch (error) {
    showError(error);
  } finally {
    state.timer = setTimeout(poll, POLL_MS);
  }
}

async function connect(key) {
  clearTimeout(state.timer);
  state.api = new StatusApi("../api", key);
  state.polls = 0;
  $("#key-form").hidden = true;
  $("#connected").hidden = false;
  await poll();
}

async function main() {
  fillSelect($("#filter-status"), STATUSES, "every status");
  for (const id of ["#filter-tenant", "#filter-tier", "#filter-status"]) {
    $(id).addEventListener("change", () => {
      setFragment({ [$(id).dataset.param]: $(id).value });
      readJobs().then(renderJobs).catch(showError);
    });
  }
  try {
    state.asl = await (await fetch(ASL_URL)).json();
    state.graph = layout(state.asl);
  } catch (error) {
    showError(new Error(`could not read the state machine (${ASL_URL}): ${error.message}`));
    return;
  }
  const params = fragment();
  if (params.get("job") && params.get("tenant")) state.selected = { tenantId: params.get("tenant"), jobId: params.get("job") };
  $("#key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const key = $("#key").value.trim();
    $("#key").value = "";
    if (key) connect(key);
  });
  $("#forget").addEventListener("click", () => {
    clearTimeout(state.timer);
    state.api = null;
    setFragment({ key: null });
    $("#key-form").hidden = false;
    $("#connected").hidden = true;
  });
  const key = params.get("key");
  if (key) connect(key);
}

main();
