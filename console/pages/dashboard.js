// Program health at a glance: KPI cards with their change against the previous period, the
// daily series as charts (the previous period dashed), tier and lifecycle mix, and campaigns
// about to end or run out of budget. Three API calls: overview, the daily series of both
// periods at once, and the first page of campaigns.
import { html, useState } from '../lib/preact.js';
import { t, fmt } from '../lib/i18n.js';
import { useApi, Loaded, Title, Delta, Empty, addDays, Tabs } from '../lib/ui.js';
import { LineChart, BarChart } from '../lib/charts.js';
import { ChurnCard } from './predictions.js';

const sum = (rows, k) => rows.reduce((a, r) => a + (r[k] || 0), 0);

/** Rows for every day of `from..=to`, zeros where the nightly fold has not run. */
function days(items, from, n) {
  const by = new Map(items.map((r) => [r.date, r]));
  return Array.from({ length: n }, (_, i) => by.get(addDays(from, i)) || { date: addDays(from, i) });
}

function Kpi({ label, value, delta, sub, test }) {
  return html`<div class="card kpi" data-kpi=${test}><div class="label">${label}</div>
    <div class="value">${value}</div>${sub ? html`<div class="muted">${sub}</div>` : null}${delta || null}</div>`;
}

function Mix({ title, counts, prefix }) {
  const total = Object.values(counts).reduce((a, b) => a + b, 0);
  return html`<div class="card"><h3>${title}</h3>
    ${total === 0 ? html`<${Empty} />` : html`<table><tbody>${Object.entries(counts).map(([k, n]) => html`<tr>
      <td>${t(`${prefix}.${k}`)}</td><td class="num">${fmt.num(n)}</td><td class="num">${fmt.pct(n / total)}</td>
      <td style=${{ width: '40%' }}><div class="bar"><span style=${{ width: `${(100 * n) / total}%` }}></span></div></td></tr>`)}</tbody></table>`}</div>`;
}

export function Dashboard() {
  const [range, setRange] = useState(30);
  const overview = useApi('/v1/analytics/overview');
  const asOf = overview.data?.as_of?.slice(0, 10);
  // The last folded day is the day before the run; both periods in one call.
  const last = asOf ? addDays(asOf, -1) : null;
  const span = Math.max(range, 30);
  const from = last ? addDays(last, -2 * span + 1) : null;
  const daily = useApi(last ? `/v1/analytics/daily?from=${from}&to=${last}` : null);
  const campaigns = useApi('/v1/campaigns?limit=50');
  if (overview.error?.status === 404) return html`<${Title}>${t('nav.dashboard')}<//><${Empty} text=${t('dashboard.no_run')} />`;
  return html`<${Title}>${t('nav.dashboard')}<//>
    <${Loaded} state=${overview}>${(o) => {
      const rows = days(daily.data?.items || [], from, 2 * span);
      const cur = rows.slice(-range);
      const prev = rows.slice(-2 * range, -range);
      const cur30 = rows.slice(-30);
      const prev30 = rows.slice(-60, -30);
      const have = !!daily.data;
      const net = (r) => sum(r, 'points_earned') + sum(r, 'points_gifted') + sum(r, 'points_adjusted') - sum(r, 'points_redeemed') - sum(r, 'points_expired') - sum(r, 'points_reversed');
      return html`
        <p class="muted">${t('dashboard.as_of', { when: fmt.dateTime(o.as_of) })}</p>
        <div class="grid">
          <${Kpi} test="members" label=${t('kpi.members')} value=${fmt.num(o.members)}
            delta=${have && html`<${Delta} now=${sum(cur30, 'enrolments')} before=${sum(prev30, 'enrolments')} format=${fmt.num} />`}
            sub=${have && t('kpi.enrolled_30d', { n: fmt.num(sum(cur30, 'enrolments')) })} />
          <${Kpi} test="active_members" label=${t('kpi.active_members')} value=${fmt.num(o.active_members)} />
          <${Kpi} test="points_outstanding" label=${t('kpi.points_outstanding')} value=${fmt.num(o.points_outstanding)}
            sub=${fmt.money(o.points_outstanding_value)}
            delta=${have && html`<${Delta} now=${net(cur30)} before=${net(prev30)} format=${fmt.num} />`} />
          <${Kpi} test="points_pending" label=${t('kpi.points_pending')} value=${fmt.num(o.points_pending)} />
          <${Kpi} test="points_earned_30d" label=${t('kpi.earned_30d')} value=${fmt.num(o.points_earned_30d)}
            delta=${have && html`<${Delta} now=${sum(cur30, 'points_earned')} before=${sum(prev30, 'points_earned')} format=${fmt.num} />`} />
          <${Kpi} test="points_redeemed_30d" label=${t('kpi.redeemed_30d')} value=${fmt.num(o.points_redeemed_30d)}
            delta=${have && html`<${Delta} now=${sum(cur30, 'points_redeemed')} before=${sum(prev30, 'points_redeemed')} format=${fmt.num} />`} />
          <${Kpi} test="points_expired_30d" label=${t('kpi.expired_30d')} value=${fmt.num(o.points_expired_30d)}
            delta=${have && html`<${Delta} now=${sum(cur30, 'points_expired')} before=${sum(prev30, 'points_expired')} format=${fmt.num} />`} />
          <${Kpi} test="repeat_purchase_rate_90d" label=${t('kpi.repeat_rate')} value=${fmt.pct(o.repeat_purchase_rate_90d)} />
          <${ChurnCard} />
        </div>
        <h3 style=${{ marginTop: '1.5rem' }}>${t('dashboard.per_day')}</h3>
        <${Tabs} value=${range} onChange=${setRange} tabs=${[[7, t('range.7')], [30, t('range.30')], [90, t('range.90')]]} />
        <${Loaded} state=${daily}>${() => html`<div class="two">
          <div class="card"><h3>${t('chart.members')}</h3><${LineChart} title=${t('chart.members')} labels=${cur.map((r) => fmt.day(r.date))} series=${[
            { label: t('series.enrolments'), values: cur.map((r) => r.enrolments || 0) },
            { label: t('series.active_members'), values: cur.map((r) => r.active_members || 0) },
            { label: t('series.enrolments_prev'), values: prev.map((r) => r.enrolments || 0), dashed: true },
            { label: t('series.active_prev'), values: prev.map((r) => r.active_members || 0), dashed: true },
          ]} /></div>
          <div class="card"><h3>${t('chart.points')}</h3><${BarChart} title=${t('chart.points')} labels=${cur.map((r) => fmt.day(r.date))} series=${[
            { label: t('series.earned'), values: cur.map((r) => r.points_earned || 0) },
            { label: t('series.redeemed'), values: cur.map((r) => r.points_redeemed || 0) },
            { label: t('series.expired'), values: cur.map((r) => r.points_expired || 0) },
          ]} /></div>
          <div class="card"><h3>${t('chart.redemptions')}</h3><${BarChart} title=${t('chart.redemptions')} labels=${cur.map((r) => fmt.day(r.date))} series=${[
            { label: t('series.redemptions'), values: cur.map((r) => r.redemptions || 0) },
          ]} /></div>
        </div>`}<//>
        <div class="two" style=${{ marginTop: '1rem' }}>
          <${Mix} title=${t('dashboard.tier_mix')} counts=${o.tiers} prefix="tier" />
          <${Mix} title=${t('dashboard.lifecycle_mix')} counts=${o.lifecycle} prefix="lifecycle" />
          <div class="card"><h3>${t('dashboard.ending_soon')}</h3>
            <${Loaded} state=${campaigns}>${(c) => {
              const soon = c.items.filter((x) => x.status === 'running' && (Date.parse(x.ends_at) - Date.parse(o.as_of) <= 7 * 86_400_000 || x.budget.remaining <= x.budget.points / 10));
              return soon.length === 0 ? html`<${Empty} text=${t('dashboard.none_ending')} />` : html`<ul>${soon.map((x) => html`<li>
                <a href=${`#/campaigns/${encodeURIComponent(x.id)}`}>${x.name}</a> — ${t('dashboard.ends', { when: fmt.date(x.ends_at) })},
                ${t('dashboard.budget_left', { pct: fmt.pct(x.budget.remaining / x.budget.points) })}</li>`)}</ul>`;
            }}<//></div>
        </div>`;
    }}<//>`;
}
