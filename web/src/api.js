// The public HTTP API, as this app calls it: GET for reads, POST for writes, the session
// cookie for identity. Every number shown comes from these answers; nothing is computed here.

export class ApiError extends Error {
  constructor(status, body) {
    super(body.message || `HTTP ${status}`);
    this.status = status;
    this.code = body.code;
    this.details = body.details;
    this.hint = body.hint;
  }
}

async function answer(res) {
  let body;
  try {
    body = await res.json();
  } catch {
    body = { message: `the server answered ${res.status} ${res.statusText}` };
  }
  if (!res.ok) throw new ApiError(res.status, body || {});
  return body;
}

// a network failure (no answer at all) is an ApiError with status 0: the call may have run
async function send(url, init) {
  let res;
  try {
    res = await fetch(url, { credentials: 'same-origin', ...init });
  } catch (e) {
    throw new ApiError(0, { message: 'no answer from the server', hint: 'check the connection and try again' });
  }
  return answer(res);
}

// api.<name> with named arguments; read: a GET of a function that only reads
export function call(name, args = {}, { read = false } = {}) {
  const given = Object.fromEntries(Object.entries(args).filter(([, v]) => v !== null && v !== undefined && v !== ''));
  if (read) {
    const query = new URLSearchParams(given).toString();
    return send(`/api/v1/rpc/${name}${query ? `?${query}` : ''}`);
  }
  return send(`/api/v1/rpc/${name}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(given),
  });
}

export const read = (name, args) => call(name, args, { read: true });

export function login(username, password, signup = false) {
  return send('/api/v1/session', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username, password, ...(signup ? { signup: true } : {}) }),
  });
}

export const logout = () => send('/api/v1/session', { method: 'DELETE' });

// a key per submission: a retry of the same submission trades once
export function newKey() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

// what a refusal says to a person: the message, and the hint when there is one
export function explain(e) {
  if (!(e instanceof ApiError)) return String(e.message || e);
  return [e.message, e.details, e.hint].filter(Boolean).join(' — ');
}
