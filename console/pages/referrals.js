// Referrals: the funnel of the last 90 days with the K-factor and the repeat rate of referred
// members against organic ones (admin, analyst), and the review queue of referrals a fraud
// rule held (every operator sees it; an administrator approves or rejects).
import { html, useState } from '../lib/preact.js';
import { api } from '../lib/api.js';
import { can } from '../lib/auth.js';
import { t, fmt } from '../lib/i18n.js';
import { useApi, usePaged, Loaded, Paged, Problem, Title, isoDay, addDays } from '../lib/ui.js';

const STAGES = ['applied', 'qualified', 'held', 'rewarded', 'reversed', 'rejected', 'expired'];

function Funnel() {
  const to = isoDay(new Date());
  const r = useApi(`/v1/analytics/referrals?from=${addDays(to, -89)}&to=${to}`);
  return html`<${Loaded} state=${r}>${(x) => {
    const f = x.funnel;
    const ret = x.retention;
    const rate = (g) => html`${fmt.pct(g.rate)} <span class="muted">(${fmt.num(g.repeat_buyers)} / ${fmt.num(g.members)})</span>`;
    return html`<div class="card" data-test="referral-funnel"><h3>${t('referral.funnel', { from: fmt.date(x.from), to: fmt.date(x.to) })}</h3>
      <table><tbody>${STAGES.map((s) => html`<tr><th>${t(`referral_status.${s}`)}</th><td class="num" data-stage=${s}>${fmt.num(f[s])}</td></tr>`)}
        <tr><th>${t('referral.points_paid')}</th><td class="num">${fmt.num(f.rewarded_points - f.reversed_points)}</td></tr>
        <tr><th>${t('referral.k_factor')}</th><td class="num">${f.k_factor === null ? '—' : fmt.num(f.k_factor)}</td></tr></tbody></table>
      ${ret && !ret.months.length ? html`<h3>${t('referral.repeat_rate')}</h3><p class="muted">${t('referral.no_cohort')}</p>` : null}
      ${ret && ret.months.length ? html`<h3>${t('referral.repeat_rate')}</h3><p class="muted">${ret.months.map(fmt.month).join(', ')}</p><table><tbody>
        <tr><th>${t('referral.referred')}</th><td class="num">${rate(ret.referred)}</td></tr>
        <tr><th>${t('referral.organic')}</th><td class="num">${rate(ret.organic)}</td></tr>
        <tr><th>${t('referral.difference')}</th><td class="num">${ret.difference === null ? '—' : html`${fmt.pct(ret.difference)} <span class="muted">${ret.difference_ci95 ? t('referral.ci95', { lo: fmt.pct(ret.difference_ci95[0]), hi: fmt.pct(ret.difference_ci95[1]) }) : ''}</span>`}</td></tr></tbody></table>` : null}
      ${x.top_referrers.length ? html`<h3>${t('referral.top')}</h3><table><thead><tr><th>${t('member.id')}</th><th class="num">${t('referral_status.qualified')}</th><th class="num">${t('referral_status.applied')}</th><th class="num">${t('referral.points_paid')}</th></tr></thead>
        <tbody>${x.top_referrers.map((p) => html`<tr><td><a href=${`#/members/${encodeURIComponent(p.member_id)}`}>${p.member_id}</a></td><td class="num">${fmt.num(p.qualified)}</td><td class="num">${fmt.num(p.applied)}</td><td class="num">${fmt.num(p.points)}</td></tr>`)}</tbody></table>` : null}
    </div>`;
  }}<//>`;
}

function Queue() {
  const list = usePaged('/v1/referrals?status=held', 20);
  const [error, setError] = useState(null);
  const decide = async (r, verdict) => {
    setError(null);
    try {
      await api(`/v1/referrals/${encodeURIComponent(r.referee_id)}/${verdict}`, { method: 'POST', body: {} });
      list.reload();
    } catch (err) { setError(err); }
  };
  return html`<div class="card" style=${{ marginTop: '1rem' }}><h3>${t('referral.queue')}</h3><${Problem} error=${error} />
    <${Paged} list=${list}>${(items) => html`<div class="scroll"><table data-test="referral-queue">
      <thead><tr><th>${t('referral.referee')}</th><th>${t('referral.referrer')}</th><th>${t('referral.rule')}</th><th>${t('referral.purchase')}</th><th>${t('referral.applied_at')}</th><th></th></tr></thead>
      <tbody>${items.map((r) => html`<tr data-referee=${r.referee_id}>
        <td><a href=${`#/members/${encodeURIComponent(r.referee_id)}`}>${r.referee_id}</a></td>
        <td><a href=${`#/members/${encodeURIComponent(r.referrer_id)}`}>${r.referrer_id}</a></td>
        <td>${t(`referral_rule.${r.rule}`)}</td>
        <td>${r.purchase ? `${r.purchase.store_id} / ${r.purchase.receipt_id}` : '—'} <span class="muted">${fmt.num(r.amount)}</span></td>
        <td>${fmt.dateTime(r.applied_at)}</td>
        <td>${can.admin() ? html`<div class="row"><button data-test="approve" onClick=${() => decide(r, 'approve')}>${t('action.approve')}</button>
          <button class="secondary" data-test="reject" onClick=${() => decide(r, 'reject')}>${t('action.reject')}</button></div>` : null}</td></tr>`)}</tbody></table></div>`}<//></div>`;
}

export function Referrals() {
  return html`<${Title}>${t('nav.referrals')}<//>
    ${can.insight() ? html`<${Funnel} />` : null}
    <${Queue} />`;
}
