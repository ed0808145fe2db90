// The console's entry: sign in (lib/auth.js), load the operator's language, then a shell with
// the pages the role may open and a hash router (#/members/ada …), so every page has a URL and
// the static host needs no rewrite rules.
import { html, render, useState, useEffect } from './lib/preact.js';
import { start, session, signOut, can } from './lib/auth.js';
import { t, lang, LANGS, loadLang, preferredLang } from './lib/i18n.js';
import { Dashboard } from './pages/dashboard.js';
import { Members, Member } from './pages/members.js';
import { Rewards } from './pages/rewards.js';
import { Segments } from './pages/segments.js';
import { Campaigns, Campaign } from './pages/campaigns.js';
import { Retention } from './pages/retention.js';
import { Activity } from './pages/activity.js';
import { Referrals } from './pages/referrals.js';
import { Predictions } from './pages/predictions.js';

/** [hash prefix, catalogue key, page, who may open it] */
const PAGES = [
  ['dashboard', 'nav.dashboard', Dashboard, can.insight],
  ['members', 'nav.members', Members, () => true],
  ['rewards', 'nav.rewards', Rewards, () => true],
  ['segments', 'nav.segments', Segments, can.insight],
  ['predictions', 'nav.predictions', Predictions, can.insight],
  ['campaigns', 'nav.campaigns', Campaigns, can.insight],
  ['retention', 'nav.retention', Retention, can.insight],
  ['referrals', 'nav.referrals', Referrals, () => true],
  ['activity', 'nav.activity', Activity, can.insight],
];

function route() {
  const parts = location.hash.replace(/^#\/?/, '').split('/').map(decodeURIComponent);
  return { page: parts[0] || '', rest: parts.slice(1) };
}

function Shell() {
  const [r, setR] = useState(route());
  const [, setLang] = useState(lang);
  useEffect(() => {
    const on = () => setR(route());
    addEventListener('hashchange', on);
    return () => removeEventListener('hashchange', on);
  }, []);
  const open = PAGES.filter((p) => p[3]());
  const page = open.find((p) => p[0] === r.page) || open[0];
  useEffect(() => {
    document.title = `${t(page[1])} · ${t('app.title')}`;
    const h = document.querySelector('main h2');
    if (h) h.focus();
  }, [page, r.rest.join('/')]);
  let body;
  if (page[0] === 'members' && r.rest[0]) body = html`<${Member} id=${r.rest[0]} />`;
  // `#/campaigns/+new/churn:likely`: a draft aimed at that segment (the Predictions page's button).
  else if (page[0] === 'campaigns' && r.rest[0] === '+new') body = html`<${Campaigns} draftFor=${r.rest[1]} />`;
  else if (page[0] === 'campaigns' && r.rest[0]) body = html`<${Campaign} id=${r.rest[0]} />`;
  else body = html`<${page[2]} rest=${r.rest} />`;
  const switchLang = async (e) => { await loadLang(e.target.value); setLang(e.target.value); };
  return html`<div class="shell">
    <nav class="rail" aria-label=${t('nav.label')}>
      <h1>${t('app.title')}</h1>
      ${open.map(([k, key]) => html`<a href=${`#/${k}`} aria-current=${k === page[0] ? 'page' : undefined} data-nav=${k}>${t(key)}</a>`)}
      <div class="who">
        <span data-test="whoami">${t('who.signed_in', { who: session.sub, role: t(`role.${session.role}`) })}</span>
        <label>${t('who.language')}
          <select data-test="lang" value=${lang} onChange=${switchLang}>
            ${LANGS.map((l) => html`<option value=${l}>${t(`lang.${l}`)}</option>`)}
          </select></label>
        <button class="secondary" onClick=${signOut}>${t('action.sign_out')}</button>
      </div>
    </nav>
    <main key=${`${page[0]}/${r.rest.join('/')}/${lang}`}>${body}</main>
  </div>`;
}

async function boot() {
  const root = document.getElementById('app');
  await loadLang(preferredLang());
  try {
    await start();
  } catch (e) {
    render(html`<div class="problem boot" role="alert"><strong>${t('error.sign_in')}</strong>${e.message}</div>`, root);
    return;
  }
  if (!session.role) {
    render(html`<div class="problem boot" role="alert"><strong>${t('error.no_role')}</strong>${t('error.no_role_detail')}</div>`, root);
    return;
  }
  root.textContent = '';
  render(html`<${Shell} />`, root);
}

boot();
