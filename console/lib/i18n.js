// Words and numbers in the operator's language: English or Simplified Chinese, first from the
// browser's languages, then the operator's choice (kept in localStorage). Every string comes
// from the catalogue of the language (i18n/<lang>.json); a missing key logs an error, which the
// browser tests fail on. Numbers, money and dates go through Intl for the chosen locale.

export const LANGS = ['en', 'zh-CN'];
export let lang = 'en';
let catalogue = {};

export function preferredLang() {
  const kept = localStorage.getItem('loyalty.console.lang');
  if (LANGS.includes(kept)) return kept;
  return (navigator.languages || [navigator.language]).some((l) => /^zh\b/i.test(l)) ? 'zh-CN' : 'en';
}

export async function loadLang(l) {
  const res = await fetch(`i18n/${l}.json`);
  catalogue = await res.json();
  lang = l;
  localStorage.setItem('loyalty.console.lang', l);
  document.documentElement.lang = l;
  document.title = t('app.title');
}

/** The catalogue's text for `key`, with `{name}` placeholders filled from `vars`. */
export function t(key, vars = {}) {
  const s = catalogue[key];
  if (s === undefined) {
    console.error(`i18n: no "${key}" in ${lang}`);
    return key;
  }
  return s.replace(/\{(\w+)\}/g, (_, k) => (vars[k] === undefined ? `{${k}}` : String(vars[k])));
}

const digitsOf = (currency) => new Intl.NumberFormat('en', { style: 'currency', currency }).resolvedOptions().maximumFractionDigits;

export const fmt = {
  num: (n) => (n === null || n === undefined ? '—' : new Intl.NumberFormat(lang).format(n)),
  money: (m) => (m ? new Intl.NumberFormat(lang, { style: 'currency', currency: m.currency }).format(m.value / 10 ** digitsOf(m.currency)) : '—'),
  pct: (x, digits = 1) => (x === null || x === undefined ? '—' : new Intl.NumberFormat(lang, { style: 'percent', maximumFractionDigits: digits }).format(x)),
  date: (s) => (s ? new Intl.DateTimeFormat(lang, { dateStyle: 'medium', timeZone: 'UTC' }).format(new Date(s.length === 10 ? `${s}T00:00:00Z` : s)) : '—'),
  dateTime: (s) => (s ? new Intl.DateTimeFormat(lang, { dateStyle: 'medium', timeStyle: 'short' }).format(new Date(s)) : '—'),
  month: (ym) => new Intl.DateTimeFormat(lang, { year: 'numeric', month: 'short', timeZone: 'UTC' }).format(new Date(`${ym}-01T00:00:00Z`)),
  day: (s) => new Intl.DateTimeFormat(lang, { month: 'numeric', day: 'numeric', timeZone: 'UTC' }).format(new Date(`${s}T00:00:00Z`)),
};

/** A money amount from minor units in the currency of another amount. */
export const minor = (value, currency) => ({ value, currency });
