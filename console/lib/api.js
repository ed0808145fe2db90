// The one door to the API: the bearer token, JSON both ways, problem+json answers as ApiError
// (title, detail, the fields a 422 names), and a 401 sends the operator to sign in again.
import { session, signInAgain } from './auth.js';

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem?.detail || problem?.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem || {};
  }
  /** Field name → message, from a validation problem's `errors`. */
  fields() {
    const out = {};
    for (const e of this.problem.errors || []) out[e.field] = e.message || e.detail || '';
    return out;
  }
}

export async function api(path, { method = 'GET', body, idempotencyKey } = {}) {
  const headers = { Accept: 'application/json' };
  if (session.token) headers.Authorization = `Bearer ${session.token}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (idempotencyKey) headers['Idempotency-Key'] = idempotencyKey;
  let res;
  try {
    // Operators always see the current state: never an answer from the browser's cache.
    res = await fetch(session.api + path, { method, headers, cache: 'no-store', body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (e) {
    throw new ApiError(0, { title: 'network', detail: String(e.message || e) });
  }
  const json = (res.headers.get('content-type') || '').includes('json') ? await res.json() : null;
  if (res.status === 401) signInAgain();
  if (!res.ok) throw new ApiError(res.status, json);
  return json;
}

/** `?a=1&b=…` from an object, leaving out empty values. */
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') q.set(k, v);
  const s = q.toString();
  return s ? `?${s}` : '';
}
