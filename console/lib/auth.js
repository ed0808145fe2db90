// Who the console is signed in as. `config.json` says how: `dev` (loyalty-local on loopback
// hands out a dev operator token) or `cognito` (the operators' user pool: authorization code
// with PKCE through the hosted UI; the access token lives in sessionStorage only). The role is
// read from the token's scopes, the same claims the API authorizes by.

export const session = { api: '', token: null, role: null, sub: null, auth: null };

const ROLES = ['admin', 'support', 'analyst'];
const KEY = 'loyalty.console.token';

function claims(token) {
  try {
    const b64 = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    const bin = atob(b64.padEnd(b64.length + ((4 - (b64.length % 4)) % 4), '='));
    return JSON.parse(new TextDecoder().decode(Uint8Array.from(bin, (c) => c.charCodeAt(0))));
  } catch {
    return {};
  }
}

function adopt(token) {
  const c = claims(token);
  const scopes = String(c.scope || '').split(' ');
  session.token = token;
  session.role = ROLES.find((r) => scopes.includes(`loyalty/${r}`)) || null;
  session.sub = c.username || c.sub || '';
}

function b64url(bytes) {
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

async function cognito(cfg) {
  const here = new URL(location.href);
  const code = here.searchParams.get('code');
  if (code) {
    const verifier = sessionStorage.getItem(`${KEY}.verifier`);
    const state = sessionStorage.getItem(`${KEY}.state`);
    sessionStorage.removeItem(`${KEY}.verifier`);
    if (!verifier || here.searchParams.get('state') !== state) throw new Error('sign-in state mismatch');
    const res = await fetch(`${cfg.domain}/oauth2/token`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        grant_type: 'authorization_code', client_id: cfg.client_id, code,
        redirect_uri: cfg.redirect_uri, code_verifier: verifier,
      }),
    });
    if (!res.ok) throw new Error(`sign-in failed (${res.status})`);
    const t = await res.json();
    sessionStorage.setItem(KEY, JSON.stringify({ token: t.access_token, until: Date.now() + t.expires_in * 1000 }));
    history.replaceState(null, '', cfg.redirect_uri + location.hash);
  }
  const kept = JSON.parse(sessionStorage.getItem(KEY) || 'null');
  if (kept && kept.until > Date.now() + 30_000) return adopt(kept.token);
  await redirect(cfg);
}

async function redirect(cfg) {
  const verifier = b64url(crypto.getRandomValues(new Uint8Array(32)));
  const state = b64url(crypto.getRandomValues(new Uint8Array(16)));
  const challenge = b64url(new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(verifier))));
  sessionStorage.setItem(`${KEY}.verifier`, verifier);
  sessionStorage.setItem(`${KEY}.state`, state);
  const q = new URLSearchParams({
    response_type: 'code', client_id: cfg.client_id, redirect_uri: cfg.redirect_uri,
    scope: 'openid', state, code_challenge_method: 'S256', code_challenge: challenge,
  });
  location.assign(`${cfg.domain}/oauth2/authorize?${q}`);
  await new Promise(() => {}); // the page is leaving
}

/** Signs in as config.json says; `?as=support|analyst` picks the dev role locally. */
export async function start() {
  const as = new URLSearchParams(location.search).get('as');
  const res = await fetch(`config.json${as ? `?role=${encodeURIComponent(as)}` : ''}`, { cache: 'no-store' });
  const cfg = await res.json();
  if (!res.ok) throw Object.assign(new Error(cfg.detail || 'config.json'), { problem: cfg });
  session.api = (cfg.api || '').replace(/\/$/, '');
  session.auth = cfg.auth;
  if (cfg.auth.kind === 'dev') adopt(cfg.auth.token);
  else if (cfg.auth.kind === 'cognito') await cognito(cfg.auth);
  else throw new Error(`unknown sign-in kind ${cfg.auth.kind}`);
}

/** After a 401: a fresh dev token, or the hosted UI again. */
export async function signInAgain() {
  sessionStorage.removeItem(KEY);
  if (session.auth?.kind === 'cognito') await redirect(session.auth);
  else location.reload();
}

export function signOut() {
  sessionStorage.removeItem(KEY);
  if (session.auth?.kind === 'cognito') {
    const q = new URLSearchParams({ client_id: session.auth.client_id, logout_uri: session.auth.redirect_uri });
    location.assign(`${session.auth.domain}/logout?${q}`);
  } else location.reload();
}

/** What the signed-in role may do: pages hide what the API would refuse. */
export const can = {
  insight: () => ['admin', 'analyst'].includes(session.role),
  care: () => ['admin', 'support'].includes(session.role),
  erase: () => session.role === 'admin',
  admin: () => session.role === 'admin',
};
