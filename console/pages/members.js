// Finding a member (by id, phone, or store + receipt) and the member 360: profile, tier and its
// progress, points and what expires soon, segments, ledger, redemptions, events; and what the
// role may do to them: adjust points with a reason, edit the profile, cancel a redemption, erase.
import { html, useState } from '../lib/preact.js';
import { api, query, ApiError } from '../lib/api.js';
import { can } from '../lib/auth.js';
import { t, fmt } from '../lib/i18n.js';
import { useApi, usePaged, Paged, Loaded, Problem, Title, Field, Confirm, newKey, Tabs, Empty } from '../lib/ui.js';
import { MemberPredictions } from './predictions.js';

const go = (id) => { location.hash = `#/members/${encodeURIComponent(id)}`; };

export function Members() {
  const [by, setBy] = useState('phone');
  const [v, setV] = useState({ id: '', phone: '', store: '', receipt: '' });
  const [error, setError] = useState(null);
  const [none, setNone] = useState(false);
  const set = (k) => (e) => setV({ ...v, [k]: e.target.value });
  const find = async (e) => {
    e.preventDefault();
    setError(null); setNone(false);
    try {
      if (by === 'id') { await api(`/v1/members/${encodeURIComponent(v.id.trim())}`); go(v.id.trim()); }
      else if (by === 'phone') {
        const r = await api(`/v1/members${query({ phone: v.phone.trim() })}`);
        if (r.items.length) go(r.items[0].id); else setNone(true);
      } else {
        const p = await api(`/v1/purchases/${encodeURIComponent(v.store.trim())}/${encodeURIComponent(v.receipt.trim())}`);
        go(p.member_id);
      }
    } catch (err) {
      if (err.status === 404) setNone(true); else setError(err);
    }
  };
  return html`<${Title}>${t('nav.members')}<//>
    <div class="card" style=${{ maxWidth: '40rem' }}>
      <${Tabs} value=${by} onChange=${(k) => { setBy(k); setNone(false); }} tabs=${[['phone', t('find.by_phone')], ['id', t('find.by_id')], ['receipt', t('find.by_receipt')]]} />
      <form onSubmit=${find} data-test="find">
        ${by === 'id' ? html`<label>${t('member.id')}<input name="id" required value=${v.id} onInput=${set('id')} /></label>` : null}
        ${by === 'phone' ? html`<label>${t('member.phone')}<input name="phone" type="tel" required placeholder="+14155550100" value=${v.phone} onInput=${set('phone')} /></label>` : null}
        ${by === 'receipt' ? html`<div class="row"><label>${t('find.store')}<input name="store" required value=${v.store} onInput=${set('store')} /></label>
          <label>${t('find.receipt')}<input name="receipt" required value=${v.receipt} onInput=${set('receipt')} /></label></div>` : null}
        <div><button type="submit">${t('action.find')}</button></div>
      </form>
      ${none ? html`<p class="empty" role="status">${t('find.none')}</p>` : null}
      <${Problem} error=${error} />
    </div>`;
}

function Adjust({ id, onDone }) {
  const [points, setPoints] = useState('');
  const [reason, setReason] = useState('');
  const [key, setKey] = useState(newKey());
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e) => {
    e.preventDefault();
    setBusy(true); setError(null);
    try {
      await api(`/v1/members/${encodeURIComponent(id)}/adjustments`, { method: 'POST', body: { points: Number(points), reason }, idempotencyKey: key });
      setPoints(''); setReason(''); setKey(newKey()); onDone();
    } catch (err) { setError(err); } finally { setBusy(false); }
  };
  const errors = error instanceof ApiError ? error.fields() : {};
  return html`<form onSubmit=${submit} data-test="adjust"><h3>${t('member.adjust')}</h3>
    <div class="row">
      <${Field} label=${t('member.adjust_points')} name="points" errors=${errors}>${(a) => html`<input ...${a} type="number" step="1" required value=${points} onInput=${(e) => setPoints(e.target.value)} />`}<//>
      <${Field} label=${t('member.adjust_reason')} name="reason" errors=${errors}>${(a) => html`<input ...${a} required maxlength="500" value=${reason} onInput=${(e) => setReason(e.target.value)} />`}<//>
      <button type="submit" disabled=${busy}>${t('action.adjust')}</button>
    </div><${Problem} error=${error} /></form>`;
}

function Profile({ m, onDone }) {
  const [v, setV] = useState({ name: m.name, email: m.email || '', phone: m.phone || '' });
  const [error, setError] = useState(null);
  const [saved, setSaved] = useState(false);
  const submit = async (e) => {
    e.preventDefault();
    setError(null); setSaved(false);
    const body = {};
    for (const k of ['name', 'email', 'phone']) if ((m[k] || '') !== v[k]) body[k] = v[k] === '' ? null : v[k];
    try { await api(`/v1/members/${encodeURIComponent(m.id)}`, { method: 'PATCH', body }); setSaved(true); onDone(); } catch (err) { setError(err); }
  };
  const errors = error instanceof ApiError ? error.fields() : {};
  return html`<form onSubmit=${submit} data-test="profile"><h3>${t('member.edit_profile')}</h3><div class="row">
    ${['name', 'email', 'phone'].map((k) => html`<${Field} label=${t(`member.${k}`)} name=${k} errors=${errors}>${(a) => html`<input ...${a} value=${v[k]} onInput=${(e) => setV({ ...v, [k]: e.target.value })} />`}<//>`)}
    <button type="submit">${t('action.save')}</button></div>
    ${saved ? html`<p class="notice" role="status">${t('state.saved')}</p>` : null}<${Problem} error=${error} /></form>`;
}

function Redemptions({ id }) {
  const list = usePaged(`/v1/members/${encodeURIComponent(id)}/redemptions`, 10);
  const [confirm, setConfirm] = useState(null);
  const [error, setError] = useState(null);
  const cancel = async () => {
    const r = confirm; setConfirm(null); setError(null);
    try { await api(`/v1/members/${encodeURIComponent(id)}/redemptions/${r.id}/cancel`, { method: 'POST' }); list.reload(); } catch (err) { setError(err); }
  };
  return html`<${Problem} error=${error} /><${Paged} list=${list}>${(items) => html`<div class="scroll"><table>
    <thead><tr><th>${t('redemption.reward')}</th><th>${t('redemption.voucher')}</th><th class="num">${t('redemption.points')}</th><th>${t('redemption.status')}</th><th>${t('redemption.expires')}</th><th></th></tr></thead>
    <tbody>${items.map((r) => html`<tr><td>${r.reward_id}</td><td><code>${r.voucher_code}</code></td><td class="num">${fmt.num(r.points_spent)}</td>
      <td><span class="pill">${t(`redemption_status.${r.status}`)}</span></td><td>${fmt.date(r.expires_at)}</td>
      <td>${can.care() && r.status === 'issued' ? html`<button class="secondary" onClick=${() => setConfirm(r)}>${t('action.cancel_redemption')}</button>` : null}</td></tr>`)}</tbody></table></div>`}<//>
    <${Confirm} open=${!!confirm} title=${t('action.cancel_redemption')} body=${t('redemption.cancel_body')} confirmLabel=${t('action.cancel_redemption')} onConfirm=${cancel} onClose=${() => setConfirm(null)} />`;
}

function Ledger({ id }) {
  const list = usePaged(`/v1/members/${encodeURIComponent(id)}/ledger`, 10);
  return html`<${Paged} list=${list}>${(items) => html`<div class="scroll"><table data-test="ledger">
    <thead><tr><th>${t('ledger.when')}</th><th>${t('ledger.kind')}</th><th class="num">${t('ledger.points')}</th><th class="num">${t('ledger.balance')}</th><th>${t('ledger.note')}</th></tr></thead>
    <tbody>${items.map((e) => html`<tr><td>${fmt.dateTime(e.created_at)}</td><td>${t(`ledger_kind.${e.kind}`)}</td><td class="num">${fmt.num(e.points)}</td><td class="num">${fmt.num(e.balance_after)}</td><td>${e.note || e.reference || ''}</td></tr>`)}</tbody></table></div>`}<//>`;
}

function Campaigns({ id }) {
  const list = usePaged(`/v1/members/${encodeURIComponent(id)}/campaigns`, 20);
  return html`<${Paged} list=${list}>${(items) => html`<div class="scroll"><table data-test="member-campaigns">
    <thead><tr><th>${t('campaign.name')}</th><th>${t('campaign.status')}</th><th>${t('member_campaign.group')}</th><th class="num">${t('member_campaign.purchases')}</th>
      <th class="num">${t('results.spend')}</th><th class="num">${t('member_campaign.awards')}</th><th class="num">${t('ledger.points')}</th></tr></thead>
    <tbody>${items.map((c) => html`<tr><td><a href=${`#/campaigns/${encodeURIComponent(c.campaign_id)}`}>${c.name}</a></td><td>${t(`campaign_status.${c.status}`)}</td>
      <td>${t(`results.${c.group}`)}</td><td class="num">${fmt.num(c.purchases)}</td><td class="num">${fmt.money(c.spend)}</td><td class="num">${fmt.num(c.awards)}</td><td class="num">${fmt.num(c.points_awarded)}</td></tr>`)}</tbody></table></div>`}<//>`;
}

function Events({ id }) {
  const list = usePaged(`/v1/members/${encodeURIComponent(id)}/events`, 10);
  return html`<${Paged} list=${list}>${(items) => html`<div class="scroll"><table>
    <thead><tr><th>#</th><th>${t('event.when')}</th><th>${t('event.type')}</th><th class="num">${t('ledger.points')}</th></tr></thead>
    <tbody>${items.map((e) => html`<tr><td>${e.seq}</td><td>${fmt.dateTime(e.occurred_at)}</td><td><code>${e.type}</code></td><td class="num">${e.data && e.data.points !== undefined ? fmt.num(e.data.points) : ''}</td></tr>`)}</tbody></table></div>`}<//>`;
}

/** One code field and its button: applying a friend's code, or an administrator's vanity code. */
function CodeForm({ test, label, button, method, url, onDone }) {
  const [code, setCode] = useState('');
  const [error, setError] = useState(null);
  const submit = async (e) => {
    e.preventDefault();
    setError(null);
    try { await api(url, { method, body: { code } }); setCode(''); onDone(); } catch (err) { setError(err); }
  };
  const errors = error instanceof ApiError ? error.fields() : {};
  return html`<form data-test=${test} onSubmit=${submit}><div class="row">
    <${Field} label=${label} name="code" errors=${errors}>${(a) => html`<input ...${a} required value=${code} onInput=${(e) => setCode(e.target.value)} />`}<//>
    <button type="submit">${button}</button></div><${Problem} error=${error} /></form>`;
}

function Referral({ id }) {
  const path = `/v1/members/${encodeURIComponent(id)}/referral`;
  const r = useApi(path);
  return html`<${Loaded} state=${r}>${(x) => html`<div data-test="member-referral"><dl class="facts">
      <dt>${t('referral.code')}</dt><dd><code data-test="referral-code">${x.code}</code></dd>
      ${['applied', 'rewarded', 'reversed', 'held', 'rejected'].map((k) => html`<dt>${t(`referral_status.${k}`)}</dt><dd>${fmt.num(x.counts[k])}</dd>`)}
      <dt>${t('referral.points_paid')}</dt><dd>${fmt.num(x.points_earned)}</dd>
      <dt>${t('referral.referred_by')}</dt><dd data-test="referred-by">${x.referred_by ? html`<a href=${`#/members/${encodeURIComponent(x.referred_by.referrer_id)}`}>${x.referred_by.referrer_id}</a>
        · ${t(`referral_status.${x.referred_by.status}`)}${x.referred_by.rule ? ` · ${t(`referral_rule.${x.referred_by.rule}`)}` : ''}` : '—'}</dd></dl>
    ${can.care() && !x.referred_by ? html`<${CodeForm} test="apply-code" label=${t('referral.apply_code')} button=${t('action.apply')} method="POST" url=${`${path}/apply`} onDone=${r.reload} />` : null}
    ${can.admin() ? html`<${CodeForm} test="vanity-code" label=${t('referral.vanity_code')} button=${t('action.save')} method="PUT" url=${`${path}/code`} onDone=${r.reload} />` : null}
    </div>`}<//>`;
}

export function Member({ id }) {
  const base = `/v1/members/${encodeURIComponent(id)}`;
  const member = useApi(base);
  const tier = useApi(`${base}/tier`);
  const points = useApi(`${base}/points`);
  const [tab, setTab] = useState('ledger');
  const [n, setN] = useState(0);
  const [erasing, setErasing] = useState(false);
  const [error, setError] = useState(null);
  const [erased, setErased] = useState(null);
  const refresh = () => { member.reload(); points.reload(); setN(n + 1); };
  const erase = async () => {
    setErasing(false); setError(null);
    try { setErased(await api(base, { method: 'DELETE', idempotencyKey: newKey() })); } catch (err) { setError(err); }
  };
  if (erased) {
    return html`<${Title}>${t('member.erased')}<//><p class="notice" role="status">${t('member.erased_detail', { id: erased.id, points: fmt.num(erased.forfeited_points) })}</p>
      <a href="#/members">${t('nav.members')}</a>`;
  }
  return html`<${Loaded} state=${member}>${(m) => html`
    <${Title} actions=${can.erase() && m.status !== 'erased' ? html`<button class="danger" onClick=${() => setErasing(true)}>${t('action.erase')}</button>` : null}>
      <span data-test="member-name">${m.name}</span> <span class="pill">${t(`tier.${m.tier}`)}</span>${m.status === 'erased' ? html` <span class="pill">${t('member.erased')}</span>` : null}<//>
    <${Problem} error=${error} />
    <div class="two">
      <div class="card"><h3>${t('member.profile')}</h3><dl class="facts">
        <dt>${t('member.id')}</dt><dd><code>${m.id}</code></dd>
        <dt>${t('member.phone')}</dt><dd>${m.phone || '—'}</dd>
        <dt>${t('member.email')}</dt><dd>${m.email || '—'}</dd>
        <dt>${t('member.birthday')}</dt><dd>${m.birthday || '—'}</dd>
        <dt>${t('member.enrolled')}</dt><dd>${fmt.date(m.enrolled_at)}</dd>
        <dt>${t('member.segments')}</dt><dd>${m.segments ? [m.segments.lifecycle && t(`lifecycle.${m.segments.lifecycle}`), m.segments.value && t(`value.${m.segments.value}`)].filter(Boolean).join(' · ') || '—' : '—'}</dd>
      </dl></div>
      <div class="card"><h3>${t('member.points')}</h3>
        <${Loaded} state=${points}>${(p) => html`<dl class="facts">
          <dt>${t('member.balance')}</dt><dd data-test="balance">${fmt.num(p.available)}</dd>
          <dt>${t('member.pending')}</dt><dd>${fmt.num(p.pending)}</dd>
          <dt>${t('member.expiring')}</dt><dd>${p.expiring.length ? p.expiring.slice(0, 3).map((x) => t('member.expiring_on', { n: fmt.num(x.points), on: fmt.date(x.on) })).join(' · ') : '—'}</dd></dl>
          ${p.lots.length ? html`<details><summary>${t('member.schedule')}</summary><table><thead><tr><th class="num">${t('ledger.points')}</th><th>${t('lot.available_on')}</th><th>${t('lot.expires_on')}</th></tr></thead>
            <tbody>${p.lots.map((l) => html`<tr><td class="num">${fmt.num(l.points)}</td><td>${fmt.date(l.available_on)}</td><td>${l.expires_on ? fmt.date(l.expires_on) : t('lot.never')}</td></tr>`)}</tbody></table></details>` : null}`}<//>
      </div>
      ${m.predictions !== undefined ? html`<div class="card"><h3>${t('predict.member_title')}</h3><${MemberPredictions} p=${m.predictions} /></div>` : null}
      <div class="card"><h3>${t('member.tier')}</h3>
        <${Loaded} state=${tier}>${(x) => html`<dl class="facts">
          <dt>${t('member.tier')}</dt><dd>${t(`tier.${x.tier}`)}</dd>
          <dt>${t('member.qualifying_spend')}</dt><dd>${fmt.money(x.qualifying_spend)}</dd>
          <dt>${t('member.next_tier')}</dt><dd>${x.next_tier ? t('member.to_next', { tier: t(`tier.${x.next_tier}`), spend: fmt.money(x.spend_to_next_tier) }) : '—'}</dd>
          <dt>${t('member.tier_expires')}</dt><dd>${x.tier_expires_on ? fmt.date(x.tier_expires_on) : '—'}</dd></dl>`}<//>
      </div>
    </div>
    ${can.care() && m.status !== 'erased' ? html`<div class="two" style=${{ marginTop: '1rem' }}>
      <div class="card"><${Adjust} id=${m.id} onDone=${refresh} /></div>
      <div class="card"><${Profile} m=${m} onDone=${refresh} /></div></div>` : null}
    <div class="card" style=${{ marginTop: '1rem' }}>
      <${Tabs} value=${tab} onChange=${setTab} tabs=${[['ledger', t('member.ledger')], ['redemptions', t('member.redemptions')], ['events', t('member.events')], ['campaigns', t('member.campaigns')], ['referral', t('member.referral')]]} />
      ${tab === 'ledger' ? html`<${Ledger} key=${n} id=${m.id} />` : tab === 'redemptions' ? html`<${Redemptions} id=${m.id} />`
        : tab === 'events' ? html`<${Events} id=${m.id} />` : tab === 'referral' ? html`<${Referral} id=${m.id} />` : html`<${Campaigns} id=${m.id} />`}
    </div>
    <${Confirm} open=${erasing} danger title=${t('action.erase')} body=${t('member.erase_body')} requireText=${m.id} confirmLabel=${t('action.erase')} onConfirm=${erase} onClose=${() => setErasing(false)} />`}<//>`;
}
