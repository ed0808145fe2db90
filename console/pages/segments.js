// Segments: every segment's size, one segment's size over time, its members page by page, and a
// CSV export of all of them (the export pages through the API until the last cursor).
import { html, useState } from '../lib/preact.js';
import { api } from '../lib/api.js';
import { t, fmt } from '../lib/i18n.js';
import { useApi, usePaged, Paged, Loaded, Problem, Title, addDays } from '../lib/ui.js';
import { LineChart } from '../lib/charts.js';

export const segmentName = (id) => {
  const [kind, name] = id.split(':');
  return `${t(`segment_kind.${kind}`)}: ${t(`${kind}.${name}`)}`;
};

function csvCell(v) {
  const s = v === null || v === undefined ? '' : String(v);
  // Quoted always; a leading = + - @ is neutralised so a spreadsheet never runs it as a formula.
  return `"${(/^[=+\-@]/.test(s) ? `'${s}` : s).replace(/"/g, '""')}"`;
}

async function exportCsv(id, setBusy, setError) {
  setBusy(true); setError(null);
  try {
    const rows = [['id', 'tier', 'lifecycle', 'value', 'last_purchase_at', 'qualifying_spend_minor', 'currency']];
    let cursor = null;
    do {
      const page = await api(`/v1/segments/${encodeURIComponent(id)}/members?limit=100${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
      for (const m of page.items) rows.push([m.id, m.tier, m.lifecycle, m.value, m.last_purchase_at, m.qualifying_spend.value, m.qualifying_spend.currency]);
      cursor = page.next_cursor;
    } while (cursor);
    const blob = new Blob([`${rows.map((r) => r.map(csvCell).join(',')).join('\r\n')}\r\n`], { type: 'text/csv' });
    const a = document.createElement('a');
    a.href = URL.createObjectURL(blob);
    a.download = `${id.replace(':', '-')}.csv`;
    a.click();
    setTimeout(() => URL.revokeObjectURL(a.href), 1000);
  } catch (err) { setError(err); } finally { setBusy(false); }
}

function Segment({ id, asOf }) {
  const to = asOf.slice(0, 10);
  const history = useApi(`/v1/segments/${encodeURIComponent(id)}/history?from=${addDays(to, -89)}&to=${to}`);
  const members = usePaged(`/v1/segments/${encodeURIComponent(id)}/members`, 20);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  return html`<div class="card" style=${{ marginTop: '1rem' }}>
    <div class="row"><h3>${segmentName(id)}</h3>
      <button class="secondary" data-test="export" disabled=${busy} onClick=${() => exportCsv(id, setBusy, setError)}>${t('segment.export')}</button></div>
    <${Problem} error=${error} />
    <${Loaded} state=${history}>${(h) => html`<${LineChart} title=${t('segment.size_history')} labels=${h.items.map((r) => fmt.day(r.date))}
      series=${[{ label: t('segment.size'), values: h.items.map((r) => r.size) }]} />`}<//>
    <${Paged} list=${members}>${(items) => html`<div class="scroll"><table>
      <thead><tr><th>${t('member.id')}</th><th>${t('member.tier')}</th><th>${t('segment_kind.lifecycle')}</th><th>${t('segment_kind.value')}</th><th>${t('segment.last_purchase')}</th><th class="num">${t('member.qualifying_spend')}</th></tr></thead>
      <tbody>${items.map((m) => html`<tr><td><a href=${`#/members/${encodeURIComponent(m.id)}`}>${m.id}</a></td><td>${t(`tier.${m.tier}`)}</td>
        <td>${m.lifecycle ? t(`lifecycle.${m.lifecycle}`) : '—'}</td><td>${m.value ? t(`value.${m.value}`) : '—'}</td><td>${fmt.date(m.last_purchase_at)}</td><td class="num">${fmt.money(m.qualifying_spend)}</td></tr>`)}</tbody></table></div>`}<//>
  </div>`;
}

export function Segments({ rest }) {
  const list = useApi('/v1/segments');
  const chosen = rest[0];
  return html`<${Title}>${t('nav.segments')}<//>
    <${Loaded} state=${list}>${(s) => html`<div class="card"><div class="scroll"><table data-test="segments">
      <thead><tr><th>${t('segment.name')}</th><th class="num">${t('segment.size')}</th><th>${t('segment.as_of')}</th></tr></thead>
      <tbody>${s.items.map((x) => html`<tr aria-current=${x.id === chosen ? 'true' : undefined}><td><a href=${`#/segments/${encodeURIComponent(x.id)}`}>${segmentName(x.id)}</a></td>
        <td class="num">${fmt.num(x.size)}</td><td>${fmt.dateTime(x.as_of)}</td></tr>`)}</tbody></table></div></div>
      ${chosen ? html`<${Segment} key=${chosen} id=${chosen} asOf=${s.items[0]?.as_of || new Date().toISOString()} />` : html`<p class="muted">${t('segment.pick')}</p>`}`}<//>`;
}
