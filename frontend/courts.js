// Screen: Courts, the tournament-wide live view. One card per court that writes to this
// database (get_courts): its current match, score, round, clock, winner, last event and health.
// Refreshed on every courts_changed push (at most twice a second, sent when a writer commits:
// this instance's on SQLite, every instance's through LISTEN/NOTIFY on PostgreSQL) and polled
// every 5 s as a fallback (a lost push link, get_courts' live "polling": shown in #ct-live).

import { h, $, setText, fmtAgo } from './ui.js';
import { COURTS, describe } from './errors.js';
import * as M from './scoreboard-model.js';

const POLL_MS = 5000;
let ctx;
let timer = null;
let visible = false;
let busy = false;
let again = false;

function fill(template, values) {
  return template.replace(/\{(\w+)\}/g, (_m, k) => values[k] ?? '');
}

function seconds(s) {
  if (s == null) return '–';
  if (s < 60) return `${Math.round(s)} s`;
  return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
}

function healthText(c) {
  return fill(COURTS.health[c.health] ?? c.health, { depth: c.spool_depth, silent: seconds(c.silent_for_s) });
}

function side(c, name) {
  const s = M.courtSnapshot(c);
  const a = M.athlete(s, name);
  return h('div', { class: `ct-side ct-${name}`, dataset: { side: name } },
    h('span', { class: 'ct-country', text: a.country || '–' }),
    h('span', { class: 'ct-name', text: a.short, title: a.long }),
    h('span', { class: 'ct-score', dataset: { score: name }, text: String(s?.current_scores?.[name] ?? 0) }));
}

function card(c) {
  const m = c.match;
  const s = M.courtSnapshot(c);
  const head = h('div', { class: 'ct-head' },
    h('h3', { class: 'ct-court', text: c.court }),
    h('span', { class: `pill ct-health ct-health-${c.health}`, dataset: { health: c.health }, text: healthText(c) }));
  const body = m
    ? [h('div', { class: 'ct-match', text: M.matchLabel(s) }),
      h('div', { class: 'ct-roundclock' },
        h('span', { class: 'ct-round', text: M.roundLabel(s) }),
        h('span', { class: 'ct-clock', text: M.clockText(s) }),
        h('span', { class: 'ct-status muted', text: m.status })),
      side(c, 'blue'), side(c, 'red'),
      ...(M.winnerText(s) ? [h('div', { class: 'ct-winner', text: M.winnerText(s) })] : [])]
    : [h('p', { class: 'muted', text: COURTS.noMatch })];
  const last = h('div', { class: 'ct-last muted',
    text: c.last_event_at ? `Last event ${fmtAgo(c.last_event_at)}` : COURTS.never });
  return h('article', { class: 'card ct-card', dataset: { court: c.court } }, head, ...body, last);
}

function render(data) {
  const list = $('#ct-list');
  const courts = data?.courts ?? [];
  $('#ct-empty').hidden = courts.length > 0;
  list.replaceChildren(...courts.map(card));
  setText($('#ct-own'), data?.court ? `This instance: ${data.court}` : '');
  const live = $('#ct-live');
  live.dataset.live = data?.live ?? '';
  live.hidden = !data?.live;
  setText(live, COURTS.live[data?.live] ?? '');
  document.documentElement.dataset.courtsAt = data?.generated_at ?? '';
}

/** Read get_courts once; a call while one runs makes one more afterwards (never stacked). */
async function refresh() {
  if (busy) { again = true; return; }
  busy = true;
  try {
    render(await ctx.invoke('get_courts'));
    $('#ct-error').hidden = true;
  } catch (err) {
    const el = $('#ct-error');
    el.hidden = false;
    setText(el, fill(COURTS.failed, { reason: describe(err, 'get_courts') }));
  } finally {
    busy = false;
    if (again) { again = false; refresh(); }
  }
}

export function init(c) {
  ctx = c;
  ctx.listen('courts_changed', () => { if (visible) refresh(); });
}

export function show() {
  visible = true;
  refresh();
  if (!timer) timer = setInterval(refresh, POLL_MS);
}

export function hide() {
  visible = false;
  if (timer) clearInterval(timer);
  timer = null;
}
