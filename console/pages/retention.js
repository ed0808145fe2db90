// Retention: monthly enrolment cohorts as a heat map, each cell the share of the cohort that
// bought in that month after enrolling.
import { html } from '../lib/preact.js';
import { t, fmt } from '../lib/i18n.js';
import { useApi, Loaded, Title, Empty } from '../lib/ui.js';
import { HeatMap } from '../lib/charts.js';

export function Retention() {
  const r = useApi('/v1/analytics/retention?months=12');
  return html`<${Title}>${t('nav.retention')}<//>
    <${Loaded} state=${r}>${(x) => {
      if (!x.cohorts.length) return html`<${Empty} />`;
      const width = Math.max(...x.cohorts.map((c) => c.retained.length));
      return html`<div class="card" data-test="retention"><${HeatMap} caption=${t('retention.caption')} corner=${t('retention.cohort')}
        rowLabels=${x.cohorts.map((c) => `${fmt.month(c.month)} (${fmt.num(c.members)})`)}
        colLabels=${Array.from({ length: width }, (_, k) => t('retention.month_n', { n: k }))}
        cell=${(i, j) => {
          const c = x.cohorts[i];
          if (j >= c.retained.length) return null;
          const share = c.members ? c.retained[j] / c.members : 0;
          return { share, text: fmt.pct(share, 0), title: t('retention.cell', { n: fmt.num(c.retained[j]), of: fmt.num(c.members) }) };
        }} /></div>`;
    }}<//>`;
}
