// The reward catalog with stock remaining; an administrator creates, edits and deactivates.
// The API's catalog lists active rewards only, so a deactivated reward leaves the list (edit it
// again by its id to bring it back).
import { html, useState } from '../lib/preact.js';
import { api, ApiError } from '../lib/api.js';
import { can } from '../lib/auth.js';
import { t, fmt } from '../lib/i18n.js';
import { usePaged, Paged, Problem, Title, Field } from '../lib/ui.js';

const TIERS = ['silver', 'gold', 'diamond'];
const blank = { id: '', name: '', description: '', cost_points: '', min_tier: 'silver', stock: '', per_member_limit: '', active: true };

function RewardForm({ initial, onDone, onCancel }) {
  const [v, setV] = useState(initial);
  const [error, setError] = useState(null);
  const set = (k) => (e) => setV({ ...v, [k]: e.target.type === 'checkbox' ? e.target.checked : e.target.value });
  const num = (x) => (x === '' || x === null ? null : Number(x));
  const submit = async (e) => {
    e.preventDefault();
    setError(null);
    try {
      await api(`/v1/rewards/${encodeURIComponent(v.id.trim())}`, {
        method: 'PUT',
        body: { name: v.name, description: v.description || null, cost_points: num(v.cost_points), min_tier: v.min_tier, stock: num(v.stock), per_member_limit: num(v.per_member_limit), active: v.active },
      });
      onDone();
    } catch (err) { setError(err); }
  };
  const errors = error instanceof ApiError ? error.fields() : {};
  const input = (k, type = 'text', extra = {}) => html`<${Field} label=${t(`reward.${k}`)} name=${k} errors=${errors}>${(a) => html`<input ...${a} ...${extra} type=${type} value=${v[k]} onInput=${set(k)} />`}<//>`;
  return html`<form class="card" onSubmit=${submit} data-test="reward-form"><h3>${initial.id ? t('reward.edit') : t('reward.new')}</h3>
    <div class="row">${input('id', 'text', { required: true, readOnly: !!initial.id, pattern: '[A-Za-z0-9_\\-]+' })}${input('name', 'text', { required: true })}</div>
    ${input('description')}
    <div class="row">${input('cost_points', 'number', { required: true, min: 0 })}
      <${Field} label=${t('reward.min_tier')} name="min_tier" errors=${errors}>${(a) => html`<select ...${a} value=${v.min_tier} onChange=${set('min_tier')}>${TIERS.map((x) => html`<option value=${x}>${t(`tier.${x}`)}</option>`)}</select>`}<//>
      ${input('stock', 'number', { min: 0, placeholder: t('reward.unlimited') })}${input('per_member_limit', 'number', { min: 1, placeholder: t('reward.no_limit') })}</div>
    <label class="row"><input type="checkbox" name="active" checked=${v.active} onChange=${set('active')} /> ${t('reward.active')}</label>
    <div class="row"><button type="submit">${t('action.save')}</button><button type="button" class="secondary" onClick=${onCancel}>${t('action.cancel')}</button></div>
    <${Problem} error=${error} /></form>`;
}

export function Rewards() {
  const list = usePaged('/v1/rewards', 20);
  const [editing, setEditing] = useState(null);
  const [error, setError] = useState(null);
  const done = () => { setEditing(null); list.reload(); };
  const deactivate = async (r) => {
    setError(null);
    try {
      await api(`/v1/rewards/${encodeURIComponent(r.id)}`, { method: 'PUT', body: { name: r.name, description: r.description, cost_points: r.cost_points, min_tier: r.min_tier, stock: r.stock, per_member_limit: r.per_member_limit, active: false } });
      list.reload();
    } catch (err) { setError(err); }
  };
  return html`<${Title} actions=${can.admin() && !editing ? html`<button data-test="new-reward" onClick=${() => setEditing(blank)}>${t('reward.new')}</button>` : null}>${t('nav.rewards')}<//>
    <${Problem} error=${error} />
    ${editing ? html`<${RewardForm} initial=${editing} onDone=${done} onCancel=${() => setEditing(null)} />` : null}
    <div class="card" style=${{ marginTop: '1rem' }}><${Paged} list=${list}>${(items) => html`<div class="scroll"><table data-test="catalog">
      <thead><tr><th>${t('reward.name')}</th><th class="num">${t('reward.cost_points')}</th><th>${t('reward.min_tier')}</th><th class="num">${t('reward.stock_remaining')}</th><th class="num">${t('reward.per_member_limit')}</th><th></th></tr></thead>
      <tbody>${items.map((r) => html`<tr><td><strong>${r.name}</strong><div class="muted">${r.description || ''}</div></td><td class="num">${fmt.num(r.cost_points)}</td>
        <td>${t(`tier.${r.min_tier}`)}</td><td class="num">${r.stock === null || r.stock === undefined ? t('reward.unlimited') : `${fmt.num(r.stock_remaining)} / ${fmt.num(r.stock)}`}</td>
        <td class="num">${r.per_member_limit ?? '—'}</td>
        <td>${can.admin() ? html`<div class="row"><button class="secondary" onClick=${() => setEditing({ ...blank, ...r, description: r.description || '', stock: r.stock ?? '', per_member_limit: r.per_member_limit ?? '' })}>${t('action.edit')}</button>
          <button class="secondary" onClick=${() => deactivate(r)}>${t('action.deactivate')}</button></div>` : null}</td></tr>`)}</tbody></table></div>`}<//></div>`;
}
