// The console's charts, drawn as SVG from plain numbers: lines per day (a previous period
// dashed beside the current), bars, a measured difference with its 95 % interval against zero,
// and a heat map. Four shapes do not need a chart library; SVG text stays real text for screen
// readers and tests, and nothing here needs inline script or style.
import { html } from './preact.js';
import { fmt } from './i18n.js';

const W = 640;
const H = 220;
const PAD = { l: 48, r: 12, t: 12, b: 28 };

function scale(max) {
  const m = max <= 0 ? 1 : max;
  const step = 10 ** Math.floor(Math.log10(m));
  const top = Math.ceil(m / step) * step;
  return { top, ticks: [0, top / 2, top] };
}

const COLORS = ['#0b5cad', '#d9480f', '#2b8a3e', '#7048e8'];

/**
 * series: [{label, values: number[], dashed?, color?}], labels: x labels (days).
 */
export function LineChart({ title, labels, series }) {
  const max = Math.max(0, ...series.flatMap((s) => s.values));
  const { top, ticks } = scale(max);
  const n = Math.max(1, labels.length - 1);
  const x = (i) => PAD.l + ((W - PAD.l - PAD.r) * i) / n;
  const y = (v) => H - PAD.b - ((H - PAD.t - PAD.b) * v) / top;
  const every = Math.max(1, Math.ceil(labels.length / 7));
  return html`<figure class="chart" aria-label=${title}>
    <svg viewBox=${`0 0 ${W} ${H}`} role="img"><title>${title}</title>
      ${ticks.map((v) => html`<g><line x1=${PAD.l} x2=${W - PAD.r} y1=${y(v)} y2=${y(v)} stroke="#e3e7ee" />
        <text x=${PAD.l - 6} y=${y(v) + 4} text-anchor="end" font-size="11" fill="#5b6677">${fmt.num(v)}</text></g>`)}
      ${labels.map((l, i) => (i % every === 0 ? html`<text x=${x(i)} y=${H - 8} text-anchor="middle" font-size="11" fill="#5b6677">${l}</text>` : null))}
      ${series.map((s, k) => html`<polyline fill="none" stroke=${s.color || COLORS[k % 4]} stroke-width="2"
          stroke-dasharray=${s.dashed ? '5 4' : undefined}
          points=${s.values.map((v, i) => `${x(i)},${y(v)}`).join(' ')} />`)}
    </svg>
    <figcaption class="legend">${series.map((s, k) => html`<span><span class=${`swatch s${k % 4}`}></span>${s.label}</span>`)}</figcaption>
  </figure>`;
}

/** Grouped bars per label: series as in LineChart. */
export function BarChart({ title, labels, series }) {
  const max = Math.max(0, ...series.flatMap((s) => s.values));
  const { top, ticks } = scale(max);
  const slot = (W - PAD.l - PAD.r) / Math.max(1, labels.length);
  const bw = Math.max(1, (slot * 0.8) / series.length);
  const y = (v) => H - PAD.b - ((H - PAD.t - PAD.b) * v) / top;
  const every = Math.max(1, Math.ceil(labels.length / 7));
  return html`<figure class="chart" aria-label=${title}>
    <svg viewBox=${`0 0 ${W} ${H}`} role="img"><title>${title}</title>
      ${ticks.map((v) => html`<g><line x1=${PAD.l} x2=${W - PAD.r} y1=${y(v)} y2=${y(v)} stroke="#e3e7ee" />
        <text x=${PAD.l - 6} y=${y(v) + 4} text-anchor="end" font-size="11" fill="#5b6677">${fmt.num(v)}</text></g>`)}
      ${labels.map((l, i) => html`<g>
        ${series.map((s, k) => html`<rect x=${PAD.l + slot * i + slot * 0.1 + bw * k} y=${y(s.values[i] || 0)}
            width=${bw} height=${H - PAD.b - y(s.values[i] || 0)} fill=${COLORS[k % 4]}><title>${`${s.label} ${l}: ${fmt.num(s.values[i] || 0)}`}</title></rect>`)}
        ${i % every === 0 ? html`<text x=${PAD.l + slot * (i + 0.5)} y=${H - 8} text-anchor="middle" font-size="11" fill="#5b6677">${l}</text>` : null}</g>`)}
    </svg>
    <figcaption class="legend">${series.map((s, k) => html`<span><span class=${`swatch s${k % 4}`}></span>${s.label}</span>`)}</figcaption>
  </figure>`;
}

/**
 * rows: [{label, value, low, high, text}] — each a difference with its 95 % interval, drawn
 * against a zero line; an interval clear of zero is coloured by its sign.
 */
export function IntervalChart({ title, rows }) {
  const ext = Math.max(1e-9, ...rows.flatMap((r) => [Math.abs(r.low ?? 0), Math.abs(r.high ?? 0), Math.abs(r.value ?? 0)]));
  const h = 44 * rows.length + 20;
  const left = 180;
  const x = (v) => left + ((W - left - 20) * (v + ext)) / (2 * ext);
  return html`<figure class="chart" aria-label=${title}>
    <svg viewBox=${`0 0 ${W} ${h}`} role="img"><title>${title}</title>
      <line x1=${x(0)} x2=${x(0)} y1="4" y2=${h - 14} stroke="#5b6677" stroke-dasharray="3 3" />
      <text x=${x(0)} y=${h - 2} text-anchor="middle" font-size="11" fill="#5b6677">0</text>
      ${rows.map((r, i) => {
        const cy = 24 + 44 * i;
        const clear = r.low !== null && r.high !== null && (r.low > 0 || r.high < 0);
        const color = !clear ? '#5b6677' : r.low > 0 ? '#1a7f37' : '#b42318';
        return html`<g>
          <text x="4" y=${cy + 4} font-size="12" fill="#1d2430">${r.label}</text>
          ${r.low !== null && r.high !== null ? html`<line x1=${x(r.low)} x2=${x(r.high)} y1=${cy} y2=${cy} stroke=${color} stroke-width="3" />
            <line x1=${x(r.low)} x2=${x(r.low)} y1=${cy - 6} y2=${cy + 6} stroke=${color} stroke-width="2" />
            <line x1=${x(r.high)} x2=${x(r.high)} y1=${cy - 6} y2=${cy + 6} stroke=${color} stroke-width="2" />` : null}
          ${r.value !== null ? html`<circle cx=${x(r.value)} cy=${cy} r="5" fill=${color} />` : null}
          <text x=${W - 4} y=${cy - 10} text-anchor="end" font-size="11" fill="#5b6677">${r.text}</text>
        </g>`;
      })}
    </svg></figure>`;
}

/** A matrix of shares 0..1 as shaded cells; `cell(i, j)` gives {share, text} or null. */
export function HeatMap({ caption, rowLabels, colLabels, cell, corner }) {
  return html`<div class="scroll"><table class="heat"><caption class="muted">${caption}</caption>
    <thead><tr><th>${corner}</th>${colLabels.map((c) => html`<th scope="col">${c}</th>`)}</tr></thead>
    <tbody>${rowLabels.map((r, i) => html`<tr><th scope="row">${r}</th>${colLabels.map((_, j) => {
      const c = cell(i, j);
      if (!c) return html`<td></td>`;
      const a = Math.max(0.04, Math.min(1, c.share));
      return html`<td style=${{ background: `rgba(11, 92, 173, ${a})`, color: a > 0.5 ? '#fff' : '#1d2430' }} title=${c.title}>${c.text}</td>`;
    })}</tr>`)}</tbody></table></div>`;
}
