// Predictions: the model the last nightly run fitted (BG/NBD and Gamma-Gamma), the churn risk
// segments with the value at risk and a button that starts a campaign draft aimed at each, and
// the backtest (what a night's model predicted against what its members did, beside a naive
// baseline). One API call, and the segments' sizes come with it.
import { html } from '../lib/preact.js';
import { t, fmt } from '../lib/i18n.js';
import { can } from '../lib/auth.js';
import { useApi, Loaded, Title, Empty } from '../lib/ui.js';

const RISKS = ['likely', 'possible', 'unlikely'];
const num = (x, digits = 3) => (x === null || x === undefined ? '—' : new Intl.NumberFormat(document.documentElement.lang || 'en', { maximumFractionDigits: digits }).format(x));
// Fitted parameters span many orders of magnitude: four significant digits each.
const sig = (x) => new Intl.NumberFormat(document.documentElement.lang || 'en', { maximumSignificantDigits: 4 }).format(x);

/** One member's scores in words (the member 360). */
export function MemberPredictions({ p }) {
  if (!p) return html`<p class="muted" data-test="predictions-none">${t('predict.none')}</p>`;
  return html`<div data-test="predictions"><p data-test="predictions-sentence">${t('predict.sentence', {
    days: p.horizon_days,
    p: fmt.pct(1 - p.churn_probability, 0),
    n: num(p.expected_purchases, 1),
    clv: p.clv ? fmt.money(p.clv) : '—',
  })}</p>
    <dl class="facts"><dt>${t('predict.risk')}</dt><dd><span class="pill" data-test="churn-risk">${t(`churn.${p.churn_risk}`)}</span></dd>
      <dt>${t('predict.p_alive')}</dt><dd>${fmt.pct(p.p_alive, 0)}</dd>
      <dt>${t('predict.as_of')}</dt><dd>${fmt.date(p.as_of)}</dd></dl></div>`;
}

/** The dashboard's card: members likely to churn and the value at risk. Nothing until a run has
 * scored someone (the segments answer always; the predictions only after a fit). */
export function ChurnCard() {
  const segments = useApi('/v1/segments');
  const scored = (segments.data?.items || []).filter((s) => s.kind === 'churn').reduce((a, s) => a + s.size, 0);
  const r = useApi(scored > 0 ? '/v1/analytics/predictions' : null);
  if (!r.data) return null;
  const p = r.data;
  return html`<div class="card kpi" data-kpi="churn_likely"><div class="label">${t('predict.likely_members')}</div>
    <div class="value"><a href="#/segments/churn:likely">${fmt.num(p.churn.likely)}</a></div>
    <div class="muted">${t('predict.value_at_risk', { value: fmt.money(p.clv_at_risk) })}</div></div>`;
}

function Scorecard({ name, s, actual }) {
  return html`<tr><th scope="row">${name}</th><td class="num">${num(s.predicted_purchases, 1)}</td><td class="num">${fmt.num(actual)}</td>
    <td class="num">${num(s.mean_absolute_error, 2)}</td><td class="num">${num(s.auc, 3)}</td></tr>`;
}

function Backtest({ b, days }) {
  if (!b) return html`<${Empty} text=${t('predict.no_backtest', { days })} />`;
  return html`<p class="muted">${t('predict.backtest_of', { from: fmt.date(b.snapshot_day), to: fmt.date(b.checked_on), n: fmt.num(b.members), none: fmt.num(b.without_purchase) })}</p>
    <div class="scroll"><table data-test="backtest"><thead><tr><th>${t('predict.predictor')}</th><th class="num">${t('predict.predicted')}</th>
      <th class="num">${t('predict.actual')}</th><th class="num">${t('predict.mae')}</th><th class="num">${t('predict.auc')}</th></tr></thead>
      <tbody><${Scorecard} name=${t('predict.model')} s=${b.model} actual=${b.actual_purchases} />
        <${Scorecard} name=${t('predict.baseline')} s=${b.baseline} actual=${b.actual_purchases} /></tbody></table></div>
    <h4>${t('predict.calibration')}</h4>
    <div class="scroll"><table data-test="calibration"><thead><tr><th>${t('predict.bin')}</th><th class="num">${t('predict.members')}</th>
      <th class="num">${t('predict.predicted_none')}</th><th class="num">${t('predict.observed_none')}</th></tr></thead>
      <tbody>${b.model.calibration.filter((c) => c.members > 0).map((c) => html`<tr><td>${fmt.pct(c.from, 0)}–${fmt.pct(c.to, 0)}</td>
        <td class="num">${fmt.num(c.members)}</td><td class="num">${fmt.pct(c.predicted)}</td><td class="num">${fmt.pct(c.observed)}</td></tr>`)}</tbody></table></div>`;
}

export function Predictions() {
  const r = useApi('/v1/analytics/predictions');
  if (r.error?.status === 404) return html`<${Title}>${t('nav.predictions')}<//><${Empty} text=${t('predict.no_fit')} />`;
  return html`<${Title}>${t('nav.predictions')}<//>
    <${Loaded} state=${r}>${(p) => html`
      <p class="muted">${t('predict.fitted', { when: fmt.dateTime(p.fitted_at), n: fmt.num(p.members_in_fit), of: fmt.num(p.purchasing_members) })}</p>
      <div class="two">
        <div class="card"><h3>${t('predict.churn')}</h3><div class="scroll"><table data-test="churn-segments">
          <thead><tr><th>${t('segment.name')}</th><th class="num">${t('segment.size')}</th><th><span class="sr-only">${t('predict.act')}</span></th></tr></thead>
          <tbody>${RISKS.map((k) => html`<tr><td><a href=${`#/segments/churn:${k}`}>${t(`churn.${k}`)}</a></td><td class="num" data-churn=${k}>${fmt.num(p.churn[k])}</td>
            <td>${can.admin() ? html`<a class="button secondary" data-test=${`draft-${k}`} href=${`#/campaigns/+new/churn:${k}`}>${t('predict.start_draft')}</a>` : null}</td></tr>`)}</tbody></table></div>
          <p data-test="clv-at-risk">${t('predict.value_at_risk', { value: fmt.money(p.clv_at_risk) })}</p>
          <p class="muted">${t('predict.thresholds', { likely: fmt.pct(p.thresholds.likely, 0), possible: fmt.pct(p.thresholds.possible, 0), days: p.horizon_days })}</p></div>
        <div class="card"><h3>${t('predict.model_title')}</h3><dl class="facts" data-test="model">
          <dt>r</dt><dd>${sig(p.params.r)}</dd><dt>α</dt><dd>${sig(p.params.alpha)}</dd>
          <dt>a</dt><dd>${sig(p.params.a)}</dd><dt>b</dt><dd>${sig(p.params.b)}</dd>
          <dt>${t('predict.log_likelihood')}</dt><dd>${num(p.log_likelihood, 2)}</dd>
          <dt>${t('predict.spend_model')}</dt><dd>${p.spend ? `p ${sig(p.spend.p)} · q ${sig(p.spend.q)} · γ ${sig(p.spend.gamma)}` : '—'}</dd></dl>
          <p class="muted">${t('predict.model_note')}</p></div>
      </div>
      <div class="card" style=${{ marginTop: '1rem' }}><h3>${t('predict.backtest')}</h3><${Backtest} b=${p.backtest} days=${p.horizon_days} /></div>`}<//>`;
}
