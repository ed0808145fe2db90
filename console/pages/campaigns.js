// Campaigns: the list by status, the draft form (the API's validation shown beside each field),
// launch with a confirmation that shows the audience it will reach, budget burn-down, end, and
// the results page: each measured difference against the holdout with its 95 % interval drawn
// against zero, and the verdict in words.
import { html, useState } from '../lib/preact.js';
import { api, ApiError } from '../lib/api.js';
import { can } from '../lib/auth.js';
import { t, fmt } from '../lib/i18n.js';
import { useApi, usePaged, Paged, Loaded, Problem, Title, Field, Confirm, Tabs, Empty } from '../lib/ui.js';
import { IntervalChart } from '../lib/charts.js';
import { segmentName } from './segments.js';

const STATUSES = ['all', 'draft', 'launching', 'running', 'ended'];

export function Campaigns({ draftFor }) {
  const list = usePaged('/v1/campaigns', 20);
  const [status, setStatus] = useState('all');
  const [creating, setCreating] = useState(!!draftFor);
  if (creating) {
    const cancel = () => { setCreating(false); if (draftFor) location.hash = '#/campaigns'; };
    return html`<${Title}>${t('campaign.new')}<//><${DraftForm} initial=${draftFor ? { audience: [draftFor] } : undefined} onCancel=${cancel} />`;
  }
  return html`<${Title} actions=${can.admin() ? html`<button data-test="new-campaign" onClick=${() => setCreating(true)}>${t('campaign.new')}</button>` : null}>${t('nav.campaigns')}<//>
    <${Tabs} value=${status} onChange=${setStatus} tabs=${STATUSES.map((s) => [s, t(`campaign_status.${s}`)])} />
    <div class="card"><${Paged} list=${list}>${(items) => {
      const shown = items.filter((c) => status === 'all' || c.status === status);
      return shown.length === 0 ? html`<${Empty} />` : html`<div class="scroll"><table data-test="campaigns">
        <thead><tr><th>${t('campaign.name')}</th><th>${t('campaign.status')}</th><th>${t('campaign.window')}</th><th class="num">${t('campaign.budget_used')}</th></tr></thead>
        <tbody>${shown.map((c) => html`<tr><td><a href=${`#/campaigns/${encodeURIComponent(c.id)}`}>${c.name}</a></td><td><span class="pill">${t(`campaign_status.${c.status}`)}</span></td>
          <td>${fmt.date(c.starts_at)} – ${fmt.date(c.ends_at)}</td><td class="num">${fmt.pct(c.budget.awarded / c.budget.points)}</td></tr>`)}</tbody></table></div>`;
    }}<//></div>`;
}

const toLocal = (iso) => (iso ? iso.slice(0, 16) : '');
const fromLocal = (v) => (v ? `${v}:00Z` : '');

function DraftForm({ initial, onCancel, onSaved }) {
  const segments = useApi('/v1/segments');
  const c = initial || {};
  const [v, setV] = useState({
    id: c.id || '', name: c.name || '', audience: c.audience || [],
    starts_at: toLocal(c.starts_at), ends_at: toLocal(c.ends_at),
    kind: c.offer?.kind || 'multiplier', multiplier: c.offer?.multiplier ?? 2, categories: (c.offer?.categories || []).join(', '),
    points: c.offer?.points ?? 100, budget_points: c.budget_points ?? 10000, holdout_percent: c.holdout_percent ?? 10, per_member_limit: c.per_member_limit ?? '',
  });
  const [error, setError] = useState(null);
  const set = (k) => (e) => setV({ ...v, [k]: e.target.value });
  const submit = async (e) => {
    e.preventDefault();
    setError(null);
    const offer = v.kind === 'multiplier'
      ? { kind: 'multiplier', multiplier: Number(v.multiplier), ...(v.categories.trim() ? { categories: v.categories.split(',').map((x) => x.trim()).filter(Boolean) } : {}) }
      : { kind: 'bonus', points: Number(v.points) };
    const body = {
      name: v.name, audience: v.audience, starts_at: fromLocal(v.starts_at), ends_at: fromLocal(v.ends_at), offer,
      budget_points: Number(v.budget_points), holdout_percent: Number(v.holdout_percent),
      ...(v.per_member_limit === '' ? {} : { per_member_limit: Number(v.per_member_limit) }),
    };
    try {
      const saved = await api(`/v1/campaigns/${encodeURIComponent(v.id.trim())}`, { method: 'PUT', body });
      if (onSaved) onSaved(saved); else location.hash = `#/campaigns/${encodeURIComponent(saved.id)}`;
    } catch (err) { setError(err); }
  };
  const errors = error instanceof ApiError ? error.fields() : {};
  // The API names audience entries audience[i]; show any of them beside the audience list.
  const audienceError = Object.entries(errors).find(([k]) => k.startsWith('audience'))?.[1];
  const input = (k, label, type = 'text', extra = {}) => html`<${Field} label=${label} name=${k} errors=${errors}>${(a) => html`<input ...${a} ...${extra} type=${type} value=${v[k]} onInput=${set(k)} />`}<//>`;
  return html`<form class="card" onSubmit=${submit} data-test="campaign-form" novalidate>
    <div class="row">${input('id', t('campaign.id'), 'text', { readOnly: !!c.id, required: true })}${input('name', t('campaign.name'))}</div>
    <fieldset><legend>${t('campaign.audience')}</legend>
      <${Loaded} state=${segments}>${(s) => html`<div class="row">${s.items.map((x) => html`<label class="row"><input type="checkbox" name="audience" value=${x.id}
        checked=${v.audience.includes(x.id)} onChange=${(e) => setV({ ...v, audience: e.target.checked ? [...v.audience, x.id] : v.audience.filter((a) => a !== x.id) })} />
        ${segmentName(x.id)} <span class="muted">(${fmt.num(x.size)})</span></label>`)}</div>`}<//>
      ${audienceError ? html`<span class="field-error" role="alert">${audienceError}</span>` : null}</fieldset>
    <div class="row">${input('starts_at', t('campaign.starts_at'), 'datetime-local')}${input('ends_at', t('campaign.ends_at'), 'datetime-local')}</div>
    <div class="row">
      <label>${t('campaign.offer')}<select name="kind" value=${v.kind} onChange=${set('kind')}>
        <option value="multiplier">${t('offer.multiplier')}</option><option value="bonus">${t('offer.bonus')}</option></select></label>
      ${v.kind === 'multiplier' ? html`${input('multiplier', t('offer.multiplier_value'), 'number', { step: '0.001' })}${input('categories', t('offer.categories'))}`
        : input('points', t('offer.points'), 'number')}
    </div>
    ${['offer.multiplier', 'offer.points', 'offer.categories', 'offer'].map((k) => (errors[k] ? html`<span class="field-error">${errors[k]}</span>` : null))}
    <div class="row">${input('budget_points', t('campaign.budget_points'), 'number')}${input('holdout_percent', t('campaign.holdout_percent'), 'number', { step: '0.01' })}${input('per_member_limit', t('campaign.per_member_limit'), 'number')}</div>
    <${Problem} error=${error} />
    <div class="row"><button type="submit">${t('action.save_draft')}</button><button type="button" class="secondary" onClick=${onCancel}>${t('action.cancel')}</button></div>
  </form>`;
}

function Results({ id }) {
  const r = useApi(`/v1/campaigns/${encodeURIComponent(id)}/results`);
  return html`<${Loaded} state=${r}>${(x) => {
    const u = x.uplift || {};
    const rows = [
      { label: t('results.conversion_uplift'), value: u.conversion_rate ?? null, low: u.conversion_rate_ci95?.[0] ?? null, high: u.conversion_rate_ci95?.[1] ?? null,
        text: u.conversion_rate === null || u.conversion_rate === undefined ? '—' : `${fmt.pct(u.conversion_rate, 2)} [${u.conversion_rate_ci95 ? u.conversion_rate_ci95.map((b) => fmt.pct(b, 2)).join(', ') : '—'}]` },
      { label: t('results.spend_uplift'), value: u.spend_per_member?.value ?? null, low: u.spend_per_member_ci95?.[0]?.value ?? null, high: u.spend_per_member_ci95?.[1]?.value ?? null,
        text: u.spend_per_member ? `${fmt.money(u.spend_per_member)} [${u.spend_per_member_ci95 ? u.spend_per_member_ci95.map(fmt.money).join(', ') : '—'}]` : '—' },
    ];
    const group = (g, k) => html`<tr><th scope="row">${t(`results.${k}`)}</th><td class="num" data-test=${`${k}-members`}>${fmt.num(g.members)}</td><td class="num" data-test=${`${k}-converted`}>${fmt.num(g.converted)}</td>
      <td class="num" data-test=${`${k}-rate`}>${fmt.pct(g.conversion_rate, 2)}</td><td class="num">${fmt.money(g.spend)}</td><td class="num">${fmt.money(g.spend_per_member)}</td></tr>`;
    return html`<div class="card" data-test="results"><h3>${t('results.title')}</h3>
      <p class="verdict" data-test="verdict">${t(`verdict.${x.verdict}`)}</p>
      <div class="scroll"><table><thead><tr><th></th><th class="num">${t('results.members')}</th><th class="num">${t('results.converted')}</th><th class="num">${t('results.rate')}</th><th class="num">${t('results.spend')}</th><th class="num">${t('results.spend_per_member')}</th></tr></thead>
        <tbody>${group(x.treatment, 'treatment')}${group(x.holdout, 'holdout')}</tbody></table></div>
      <${IntervalChart} title=${t('results.interval_title')} rows=${rows} />
      <p class="muted">${t('results.how_to_read')}</p>
      ${u.incremental_spend ? html`<p>${t('results.incremental', { spend: fmt.money(u.incremental_spend) })}</p>` : null}</div>`;
  }}<//>`;
}

export function Campaign({ id }) {
  const c = useApi(`/v1/campaigns/${encodeURIComponent(id)}`);
  const segments = useApi('/v1/segments');
  const [editing, setEditing] = useState(false);
  const [confirm, setConfirm] = useState(null);
  const [error, setError] = useState(null);
  const act = async (what) => {
    setConfirm(null); setError(null);
    try { await api(`/v1/campaigns/${encodeURIComponent(id)}/${what}`, { method: 'POST' }); c.reload(); } catch (err) { setError(err); }
  };
  return html`<${Loaded} state=${c}>${(x) => {
    if (editing) return html`<${Title}>${x.name}<//><${DraftForm} initial=${x} onCancel=${() => setEditing(false)} onSaved=${() => { setEditing(false); c.reload(); }} />`;
    const reach = (segments.data?.items || []).filter((s) => x.audience.includes(s.id)).reduce((a, s) => a + s.size, 0);
    const canAct = can.admin();
    return html`<${Title} actions=${html`<span class="pill" data-test="campaign-status">${t(`campaign_status.${x.status}`)}</span>`}>${x.name}<//>
      <${Problem} error=${error} />
      <div class="two">
        <div class="card"><dl class="facts">
          <dt>${t('campaign.audience')}</dt><dd>${x.audience.map(segmentName).join(', ')}</dd>
          <dt>${t('campaign.window')}</dt><dd>${fmt.dateTime(x.starts_at)} – ${fmt.dateTime(x.ends_at)}</dd>
          <dt>${t('campaign.offer')}</dt><dd>${x.offer.kind === 'multiplier' ? t('offer.multiplier_text', { m: x.offer.multiplier }) : t('offer.bonus_text', { n: fmt.num(x.offer.points) })}</dd>
          <dt>${t('campaign.holdout_percent')}</dt><dd>${fmt.num(x.holdout_percent)} %</dd>
          <dt>${t('campaign.per_member_limit')}</dt><dd>${x.per_member_limit ?? '—'}</dd>
          ${x.audience_size ? html`<dt>${t('campaign.audience_size')}</dt><dd data-test="audience-size">${t('campaign.split', { treatment: fmt.num(x.audience_size.treatment), holdout: fmt.num(x.audience_size.holdout) })}</dd>` : null}
        </dl>
        ${canAct ? html`<div class="row" style=${{ marginTop: '1rem' }}>
          ${x.status === 'draft' ? html`<button class="secondary" onClick=${() => setEditing(true)}>${t('action.edit')}</button>` : null}
          ${x.status === 'draft' || x.status === 'launching' ? html`<button data-test="launch" onClick=${() => setConfirm('launch')}>${t('action.launch')}</button>` : null}
          ${x.status === 'running' ? html`<button class="danger" data-test="end" onClick=${() => setConfirm('end')}>${t('action.end')}</button>` : null}</div>` : null}</div>
        <div class="card"><h3>${t('campaign.budget')}</h3>
          <p data-test="budget">${t('campaign.budget_text', { awarded: fmt.num(x.budget.awarded), points: fmt.num(x.budget.points), remaining: fmt.num(x.budget.remaining) })}</p>
          <div class="bar" role="progressbar" aria-valuemin="0" aria-valuemax=${x.budget.points} aria-valuenow=${x.budget.awarded} aria-label=${t('campaign.budget')}>
            <span style=${{ width: `${Math.min(100, (100 * x.budget.awarded) / x.budget.points)}%` }}></span></div></div>
      </div>
      ${x.status === 'draft' ? null : html`<div style=${{ marginTop: '1rem' }}><${Results} id=${x.id} /></div>`}
      <${Confirm} open=${confirm === 'launch'} title=${t('action.launch')} body=${t('campaign.launch_body', { n: fmt.num(reach), holdout: fmt.num(x.holdout_percent) })}
        confirmLabel=${t('action.launch')} onConfirm=${() => act('launch')} onClose=${() => setConfirm(null)} />
      <${Confirm} open=${confirm === 'end'} danger title=${t('action.end')} body=${t('campaign.end_body')} confirmLabel=${t('action.end')} onConfirm=${() => act('end')} onClose=${() => setConfirm(null)} />`;
  }}<//>`;
}
