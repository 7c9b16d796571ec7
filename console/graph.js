// The state machine as a graph: states laid out in layers from StartAt, edges from Next, Choices, Default
// and Catch, drawn as SVG. Pure functions of the ASL document (statemachines/training_job.asl.json) and of
// an execution's path (GET /tenants/{tenantId}/jobs/{jobId}/execution).

const SVG = "http://www.w3.org/2000/svg";
export const NODE_WIDTH = 210;
export const NODE_HEIGHT = 38;
const COLUMN_GAP = 26;
const ROW_GAP = 34;
const MARGIN = 16;

/** Every edge of one state: {from, to, kind} with kind next, choice, default or catch. */
export function edgesOf(name, state) {
  const edges = [];
  if (state.Next) edges.push({ from: name, to: state.Next, kind: "next" });
  for (const choice of state.Choices || []) edges.push({ from: name, to: choice.Next, kind: "choice" });
  if (state.Default) edges.push({ from: name, to: state.Default, kind: "default" });
  for (const handler of state.Catch || []) edges.push({ from: name, to: handler.Next, kind: "catch" });
  // One edge per (from, to, kind): several Catch clauses often lead to the same state.
  const seen = new Set();
  return edges.filter((edge) => {
    const key = `${edge.to}\u0000${edge.kind}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

/** Layers by the longest path from StartAt over the edges that do not close a cycle (those are drawn as
 * back edges), states ordered within a layer by where their predecessors are. */
export function layout(asl) {
  const states = asl.States;
  const names = Object.keys(states);
  const edges = names.flatMap((name) => edgesOf(name, states[name])).filter((e) => e.to in states);
  const outgoing = new Map(names.map((name) => [name, []]));
  for (const edge of edges) outgoing.get(edge.from).push(edge);

  // Depth-first from StartAt: an edge to a state still on the stack closes a cycle.
  const back = new Set();
  const visiting = new Set();
  const done = new Set();
  const order = [];
  const visit = (name) => {
    visiting.add(name);
    for (const edge of outgoing.get(name)) {
      if (visiting.has(edge.to)) back.add(edge);
      else if (!done.has(edge.to)) visit(edge.to);
    }
    visiting.delete(name);
    done.add(name);
    order.push(name);
  };
  visit(asl.StartAt);
  for (const name of names) if (!done.has(name)) visit(name);
  order.reverse(); // a topological order of the forward edges

  const layer = new Map(names.map((name) => [name, 0]));
  for (const name of order) {
    for (const edge of outgoing.get(name)) {
      if (!back.has(edge)) layer.set(edge.to, Math.max(layer.get(edge.to), layer.get(name) + 1));
    }
  }
  const rows = [];
  for (const name of order) {
    const row = layer.get(name);
    (rows[row] ||= []).push(name);
  }
  // Barycentre ordering, top-down: each state near the mean position of its predecessors.
  const position = new Map();
  rows.forEach((row, index) => {
    if (index > 0) {
      const mean = (name) => {
        const from = edges.filter((e) => e.to === name && !back.has(e) && position.has(e.from));
        return from.length ? from.reduce((sum, e) => sum + position.get(e.from), 0) / from.length : 0;
      };
      row.sort((a, b) => mean(a) - mean(b));
    }
    row.forEach((name, i) => position.set(name, i - (row.length - 1) / 2));
  });
  const widest = Math.max(...rows.map((row) => row.length));
  const width = widest * (NODE_WIDTH + COLUMN_GAP) + 2 * MARGIN;
  const nodes = new Map();
  rows.forEach((row, index) => {
    for (const name of row) {
      const x = width / 2 + position.get(name) * (NODE_WIDTH + COLUMN_GAP) - NODE_WIDTH / 2;
      const y = MARGIN + index * (NODE_HEIGHT + ROW_GAP);
      nodes.set(name, { name, type: states[name].Type, x, y });
    }
  });
  const height = MARGIN * 2 + rows.length * (NODE_HEIGHT + ROW_GAP) - ROW_GAP;
  return { nodes, edges: edges.map((e) => ({ ...e, back: back.has(e) })), width, height };
}

function element(name, attributes = {}, parent = null) {
  const node = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, String(value));
  if (parent) parent.appendChild(node);
  return node;
}

/** The words of a state's name on at most three lines of about `width` characters. */
export function wrap(text, width = 30) {
  const lines = [""];
  for (const word of text.split(" ")) {
    const last = lines.length - 1;
    if (lines[last] && (lines[last] + " " + word).length > width) lines.push(word);
    else lines[last] = lines[last] ? `${lines[last]} ${word}` : word;
  }
  return lines.length > 3 ? [...lines.slice(0, 2), lines.slice(2).join(" ")] : lines;
}

function edgePath(from, to, isBack) {
  const x1 = from.x + NODE_WIDTH / 2;
  const y1 = from.y + NODE_HEIGHT;
  const x2 = to.x + NODE_WIDTH / 2;
  const y2 = to.y;
  if (isBack) {
    // Around the right of both states, upwards.
    const side = Math.max(from.x, to.x) + NODE_WIDTH + COLUMN_GAP / 2;
    return `M ${from.x + NODE_WIDTH} ${from.y + NODE_HEIGHT / 2} C ${side} ${from.y + NODE_HEIGHT / 2}, ${side} ${to.y + NODE_HEIGHT / 2}, ${to.x + NODE_WIDTH} ${to.y + NODE_HEIGHT / 2}`;
  }
  const bend = Math.max(18, (y2 - y1) / 2);
  return `M ${x1} ${y1} C ${x1} ${y1 + bend}, ${x2} ${y2 - bend}, ${x2} ${y2}`;
}

/** Each state's standing in an execution: current, failed (left with an error), visited, or none. */
export function standings(path) {
  const standing = new Map();
  for (const visit of path?.visits || []) {
    const now = standing.get(visit.name);
    const mine = visit.error ? "failed" : "visited";
    if (now !== "failed") standing.set(visit.name, mine);
  }
  for (const name of path?.current || []) standing.set(name, "current");
  if (path && ["FAILED", "TIMED_OUT", "ABORTED"].includes(path.status)) {
    const last = path.visits[path.visits.length - 1];
    if (last && (last.type === "Fail" || path.status !== "FAILED")) standing.set(last.name, "failed");
  }
  return standing;
}

/** The transitions an execution took: consecutive visits. */
export function takenEdges(path) {
  const taken = new Set();
  const visits = path?.visits || [];
  for (let i = 1; i < visits.length; i += 1) taken.add(`${visits[i - 1].name}\u0000${visits[i].name}`);
  return taken;
}

/** Draw `graph` (layout()) into a new <svg>, states classed by `path`; onSelect(name) on a click. */
export function render(graph, path, onSelect) {
  const svg = element("svg", {
    viewBox: `0 0 ${graph.width} ${graph.height}`,
    width: graph.width,
    height: graph.height,
    role: "img",
    "aria-label": "The state machine, with the states this job's execution visited highlighted",
    class: "state-machine",
  });
  const defs = element("defs", {}, svg);
  for (const kind of ["plain", "taken"]) {
    const marker = element(
      "marker",
      { id: `arrow-${kind}`, viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto" },
      defs,
    );
    element("path", { d: "M 0 0 L 10 5 L 0 10 z", class: `arrowhead ${kind}` }, marker);
  }
  const standing = standings(path);
  const taken = takenEdges(path);
  const edgeLayer = element("g", { class: "edges" }, svg);
  for (const edge of graph.edges) {
    const from = graph.nodes.get(edge.from);
    const to = graph.nodes.get(edge.to);
    const isTaken = taken.has(`${edge.from}\u0000${edge.to}`);
    const line = element(
      "path",
      {
        d: edgePath(from, to, edge.back),
        class: `edge ${edge.kind}${edge.back ? " back" : ""}${isTaken ? " taken" : ""}`,
        "marker-end": `url(#arrow-${isTaken ? "taken" : "plain"})`,
      },
      edgeLayer,
    );
    element("title", {}, line).textContent = `${edge.from} → ${edge.to} (${edge.kind})`;
  }
  const nodeLayer = element("g", { class: "nodes" }, svg);
  for (const node of graph.nodes.values()) {
    const group = element(
      "g",
      {
        class: `state ${node.type.toLowerCase()} ${standing.get(node.name) || "unvisited"}`,
        "data-state": node.name,
        transform: `translate(${node.x} ${node.y})`,
        tabindex: 0,
      },
      nodeLayer,
    );
    element("rect", { width: NODE_WIDTH, height: NODE_HEIGHT, rx: node.type === "Choice" ? 14 : 5 }, group);
    const lines = wrap(node.name);
    const text = element("text", { x: NODE_WIDTH / 2, y: NODE_HEIGHT / 2 - (lines.length - 1) * 6.5 + 4 }, group);
    lines.forEach((line, i) => {
      element("tspan", { x: NODE_WIDTH / 2, dy: i === 0 ? 0 : 13 }, text).textContent = line;
    });
    element("title", {}, group).textContent = `${node.name} (${node.type})`;
    if (onSelect) group.addEventListener("click", () => onSelect(node.name));
  }
  return svg;
}
