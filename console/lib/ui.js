// The pieces every page uses: loading / empty / error states, a problem shown with its title and
// detail, cursor paging that loads one page at a time, labelled fields that show the API's
// validation message beside them, and a confirmation dialog.
import { html, useState, useEffect, useCallback } from './preact.js';
import { api } from './api.js';
import { t } from './i18n.js';

export const Loading = () => html`<p class="loading" role="status">${t('state.loading')}</p>`;
export const Empty = ({ text }) => html`<p class="empty">${text || t('state.empty')}</p>`;

export function Problem({ error }) {
  if (!error) return null;
  const p = error.problem || {};
  const title = error.status === 0 ? t('error.network') : p.title || t('error.generic');
  return html`<div class="problem" role="alert"><strong>${title}${error.status ? ` (${error.status})` : ''}</strong>${p.detail || ''}</div>`;
}

/** Loads `path` when it changes; `reload()` fetches again. */
export function useApi(path) {
  const [state, set] = useState({ loading: true, data: null, error: null });
  const [n, setN] = useState(0);
  useEffect(() => {
    if (!path) return undefined;
    let live = true;
    set((s) => ({ ...s, loading: true, error: null }));
    api(path).then(
      (data) => live && set({ loading: false, data, error: null }),
      (error) => live && set({ loading: false, data: null, error }),
    );
    return () => { live = false; };
  }, [path, n]);
  return { ...state, reload: useCallback(() => setN((x) => x + 1), []) };
}

/** A list the API pages with cursors: the first page, then one more per click. */
export function usePaged(path, limit = 20) {
  const [state, set] = useState({ items: [], next: null, loading: true, error: null });
  const sep = path && path.includes('?') ? '&' : '?';
  const load = useCallback(async (cursor, keep) => {
    set((s) => ({ ...s, loading: true, error: null }));
    try {
      const page = await api(`${path}${sep}limit=${limit}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
      set({ items: [...keep, ...page.items], next: page.next_cursor || null, loading: false, error: null });
    } catch (error) {
      set((s) => ({ ...s, loading: false, error }));
    }
  }, [path, limit]);
  useEffect(() => { if (path) load(null, []); }, [path, load]);
  return { ...state, more: () => load(state.next, state.items), reload: () => load(null, []) };
}

export function Paged({ list, children }) {
  return html`
    <${Problem} error=${list.error} />
    ${list.items.length === 0 && !list.loading && !list.error ? html`<${Empty} />` : children(list.items)}
    ${list.loading ? html`<${Loading} />` : null}
    ${list.next && !list.loading ? html`<button class="secondary" onClick=${list.more}>${t('action.more')}</button>` : null}`;
}

/** Shows what a call answered: data through `children`, else loading or the problem. */
export function Loaded({ state, children }) {
  if (state.error) return html`<${Problem} error=${state.error} />`;
  if (state.loading && !state.data) return html`<${Loading} />`;
  return children(state.data);
}

export function Field({ label, name, errors = {}, children }) {
  const id = `f-${name.replace(/[^\w-]/g, '-')}`;
  const err = errors[name];
  return html`<label for=${id}>${label}${children({ id, name, 'aria-invalid': err ? 'true' : 'false', 'aria-describedby': err ? `${id}-err` : undefined })}
    ${err ? html`<span class="field-error" id=${`${id}-err`}>${err}</span>` : null}</label>`;
}

/** A modal asking to confirm; `requireText` makes the operator type it first (erasure). */
export function Confirm({ open, title, body, confirmLabel, danger, requireText, onConfirm, onClose }) {
  const [typed, setTyped] = useState('');
  useEffect(() => setTyped(''), [open]);
  if (!open) return null;
  const ok = !requireText || typed === requireText;
  return html`<dialog open aria-modal="true" aria-labelledby="confirm-title">
    <h3 id="confirm-title">${title}</h3>
    <p>${body}</p>
    ${requireText ? html`<label>${t('confirm.type', { text: requireText })}<input data-test="confirm-text" value=${typed} onInput=${(e) => setTyped(e.target.value)} /></label>` : null}
    <div class="row">
      <button class=${danger ? 'danger' : ''} disabled=${!ok} onClick=${onConfirm}>${confirmLabel}</button>
      <button class="secondary" onClick=${onClose}>${t('action.cancel')}</button>
    </div></dialog>`;
}

/** A fresh idempotency key per intended write: a retried click reuses it. */
export const newKey = () => crypto.randomUUID();

export function Tabs({ tabs, value, onChange }) {
  return html`<div class="tabs" role="group">${tabs.map(([k, label]) => html`
    <button aria-pressed=${String(value === k)} onClick=${() => onChange(k)}>${label}</button>`)}</div>`;
}

/** YYYY-MM-DD of a Date in UTC, and n days from it. */
export const isoDay = (d) => d.toISOString().slice(0, 10);
export const addDays = (day, n) => isoDay(new Date(Date.parse(`${day}T00:00:00Z`) + n * 86_400_000));

/** A page's heading (focused on navigation, so a screen reader announces the new page). */
export const Title = ({ children, actions }) => html`<div class="row"><h2 tabindex="-1">${children}</h2>${actions || null}</div>`;

/** A change against the previous period, with its direction for colour and screen readers. */
export function Delta({ now, before, format = (x) => x }) {
  if (before === null || before === undefined) return null;
  const d = now - before;
  const cls = d > 0 ? 'up' : d < 0 ? 'down' : 'flat';
  const sign = d > 0 ? '+' : d < 0 ? '−' : '±';
  return html`<span class=${`delta ${cls}`}>${sign}${format(Math.abs(d))} ${t('kpi.vs_previous')}</span>`;
}
