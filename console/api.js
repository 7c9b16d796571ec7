// The status API as the console calls it: through the console server's /api/ (same origin, no CORS), with
// the operator key held in this page only (typed in, or from the URL fragment, which never reaches a server).

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export class StatusApi {
  constructor(base, key) {
    this.base = base.replace(/\/$/, "");
    this.key = key;
  }

  async get(path, query = {}) {
    const search = new URLSearchParams(Object.entries(query).filter(([, value]) => value != null && value !== ""));
    const url = `${this.base}${path}${search.toString() ? `?${search}` : ""}`;
    const response = await fetch(url, { headers: { Authorization: `Bearer ${this.key}`, Accept: "application/json" } });
    const text = await response.text();
    let body = null;
    try {
      body = text ? JSON.parse(text) : null;
    } catch {
      body = null;
    }
    if (!response.ok) {
      throw new ApiError(response.status, `${path}: HTTP ${response.status}: ${body?.message || text || response.statusText}`);
    }
    return body;
  }

  /** Every page of a listing (at most `pages` pages). */
  async all(path, query = {}, pages = 20) {
    const items = [];
    let token = null;
    for (let page = 0; page < pages; page += 1) {
      const body = await this.get(path, { ...query, limit: 100, nextToken: token });
      items.push(...body.items);
      token = body.nextToken;
      if (!token) return { items, complete: true };
    }
    return { items, complete: false };
  }

  tiers() {
    return this.get("/tiers");
  }

  tenants() {
    return this.all("/tenants");
  }

  tenantJobs(tenantId, status, limit = 25) {
    return this.get(`/tenants/${encodeURIComponent(tenantId)}/jobs`, { status, limit });
  }

  job(tenantId, jobId) {
    return this.get(`/tenants/${encodeURIComponent(tenantId)}/jobs/${encodeURIComponent(jobId)}`);
  }

  execution(tenantId, jobId) {
    return this.get(`/tenants/${encodeURIComponent(tenantId)}/jobs/${encodeURIComponent(jobId)}/execution`);
  }
}
