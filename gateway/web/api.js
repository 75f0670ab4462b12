// The one place the console talks to the gateway's JSON API. The token lives in sessionStorage only
// (gone when the tab closes) and is sent only as the Authorization header, never in a URL.

const TOKEN_KEY = "shuzhu.token";

export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(t) {
  sessionStorage.setItem(TOKEN_KEY, t.trim());
}

export function clearSession() {
  sessionStorage.clear();
}

/** An answer that is not 2xx: the HTTP status and the RFC 9457 problem document, if any. */
export class ApiError extends Error {
  constructor(status, problem) {
    const detail = problem && (problem.detail || problem.title);
    super(detail || `HTTP ${status}`);
    this.status = status;
    this.problem = problem || {};
  }
}

/** Calls `method path` with an optional JSON body; resolves to the parsed JSON answer. */
export async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  const t = token();
  if (t) headers.Authorization = `Bearer ${t}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const resp = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    cache: "no-store",
    credentials: "omit",
    referrerPolicy: "no-referrer",
  });
  const type = resp.headers.get("content-type") || "";
  let data = null;
  if (type.includes("json")) {
    try {
      data = await resp.json();
    } catch {
      data = null;
    }
  }
  if (!resp.ok) throw new ApiError(resp.status, data);
  return data;
}

/** `YYYY-MM` → 202401. */
export function yyyymm(s) {
  const m = /^(\d{4})-(\d{2})$/.exec(s.trim());
  if (!m || +m[2] < 1 || +m[2] > 12) return null;
  return +m[1] * 100 + +m[2];
}

/** The body of POST /v1/query: it mirrors the gRPC QueryRequest. */
export function queryBody({ indicator, groupBy, from, to, filters, purpose, legalBasis }) {
  return {
    indicator,
    group_by: groupBy,
    period: { from_month: yyyymm(from), to_month: yyyymm(to) },
    filters: filters || [],
    purpose,
    legal_basis: legalBasis || "",
  };
}

export const query = (req) => api("POST", "/v1/query", queryBody(req));
export const me = () => api("GET", "/v1/me");
export const indicators = () => api("GET", "/v1/indicators").then((d) => (Array.isArray(d) ? d : d.indicators || []));
