// Activity: the program's recent events (the event feed, one hour-window at a time, filterable by
// type) and, for administrators, the audit trail of operator writes.
import { html, useState } from '../lib/preact.js';
import { can } from '../lib/auth.js';
import { t, fmt } from '../lib/i18n.js';
import { usePaged, Paged, Title, Tabs, Empty } from '../lib/ui.js';
import { query } from '../lib/api.js';

function Events() {
  const [hours, setHours] = useState(24);
  const [type, setType] = useState('');
  const to = new Date(Math.ceil(Date.now() / 60_000) * 60_000);
  const from = new Date(to.getTime() - hours * 3_600_000);
  const list = usePaged(`/v1/events${query({ from: from.toISOString().slice(0, 19) + 'Z', to: to.toISOString().slice(0, 19) + 'Z' })}`, 50);
  const types = [...new Set(list.items.map((e) => e.type))].sort();
  return html`<div class="row">
      <label>${t('activity.window')}<select value=${hours} onChange=${(e) => setHours(Number(e.target.value))}>
        ${[1, 6, 24].map((h) => html`<option value=${h}>${t('activity.hours', { n: h })}</option>`)}</select></label>
      <label>${t('event.type')}<select data-test="event-type" value=${type} onChange=${(e) => setType(e.target.value)}>
        <option value="">${t('activity.all_types')}</option>${types.map((x) => html`<option value=${x}>${x}</option>`)}</select></label></div>
    <${Paged} list=${list}>${(items) => {
      const shown = items.filter((e) => !type || e.type === type);
      return shown.length === 0 ? html`<${Empty} />` : html`<div class="scroll"><table data-test="events">
        <thead><tr><th>${t('event.when')}</th><th>${t('event.type')}</th><th>${t('event.member')}</th><th class="num">${t('ledger.points')}</th></tr></thead>
        <tbody>${shown.map((e) => html`<tr><td>${fmt.dateTime(e.occurred_at)}</td><td><code>${e.type}</code></td>
          <td>${e.member_id ? html`<a href=${`#/members/${encodeURIComponent(e.member_id)}`}>${e.member_id}</a>` : '—'}</td>
          <td class="num">${e.data && e.data.points !== undefined ? fmt.num(e.data.points) : ''}</td></tr>`)}</tbody></table></div>`;
    }}<//>`;
}

function Audit() {
  const list = usePaged('/v1/audit', 50);
  return html`<${Paged} list=${list}>${(items) => html`<div class="scroll"><table data-test="audit">
    <thead><tr><th>${t('audit.when')}</th><th>${t('audit.who')}</th><th>${t('audit.action')}</th><th>${t('audit.target')}</th><th>${t('audit.changes')}</th></tr></thead>
    <tbody>${items.map((a) => html`<tr><td>${fmt.dateTime(a.at)}</td><td>${a.actor.sub} <span class="pill">${t(`role.${a.actor.role}`)}</span></td>
      <td>${t(`audit_action.${a.action}`)}</td><td>${a.member_id ? html`<a href=${`#/members/${encodeURIComponent(a.member_id)}`}>${a.member_id}</a>` : a.target || '—'}</td>
      <td>${a.changes.map((c) => html`<div><code>${c.field}</code>${c.before !== undefined || c.after !== undefined ? `: ${JSON.stringify(c.before ?? null)} → ${JSON.stringify(c.after ?? null)}` : ''}</div>`)}</td></tr>`)}</tbody></table></div>`}<//>`;
}

export function Activity() {
  const [tab, setTab] = useState('events');
  return html`<${Title}>${t('nav.activity')}<//>
    ${can.admin() ? html`<${Tabs} value=${tab} onChange=${setTab} tabs=${[['events', t('activity.events')], ['audit', t('activity.audit')]]} />` : null}
    <div class="card">${tab === 'audit' && can.admin() ? html`<${Audit} />` : html`<${Events} />`}</div>`;
}
