// Screen 2: the scoreboard, rebuilt from pss_match_state snapshots (latest-only pushes, so at
// most ~30 a second) and from pss_get_match_state() at load.

import { h, $, setText, toast } from './ui.js';
import { describe } from './errors.js';
import * as M from './scoreboard-model.js';

let ctx;
let latest = null;
let frame = 0;
let source = '';  // '' follows the court whose state changed last; else "ip:port"


function renderSide(s, side) {
  const a = M.athlete(s, side);
  const { bg, fg } = M.sideColours(s, side);
  const bar = $(`#sb-${side}-bar`);
  bar.style.backgroundColor = bg;  // CSSOM: allowed by the CSP, unlike style attributes
  bar.style.color = fg;
  $(`#sb-side-${side}`).style.borderColor = bg;
  setText($(`#sb-${side}-short`), a.short);
  setText($(`#sb-${side}-long`), a.long);
  setText($(`#sb-${side}-country`), a.country || '–');
  setText($(`#sb-${side}-score`), s?.current_scores?.[side] ?? 0);
  setText($(`#sb-${side}-warnings`), s?.warnings?.[side] ?? 0);
  setText($(`#sb-${side}-hit`), s?.hit_levels?.[side] ?? '–');
  setText($(`#sb-${side}-last`), M.lastPointsText(s, side));
  $(`#sb-side-${side}`).classList.toggle('sb-won', M.winnerSide(s) === side);
}

function renderRounds(s) {
  const n = M.roundCount(s);
  const head = $('#sb-rounds-head');
  if (head.children.length !== n + 1) {
    head.replaceChildren(h('th', { scope: 'col' }),
      ...Array.from({ length: n }, (_, i) => h('th', { scope: 'col', text: i === 3 ? 'GP' : `R${i + 1}` })));
  }
  for (const side of M.SIDES) {
    const row = $(`#sb-rounds-${side}`);
    const cells = Array.from({ length: n }, (_, i) => {
      const td = h('td', { text: s?.round_scores?.[side]?.[i] ?? '' });
      if (s?.round === i + 1) td.classList.add('current');
      return td;
    });
    row.replaceChildren(row.firstElementChild, ...cells);
  }
  const wrow = $('#sb-rounds-winner');
  wrow.replaceChildren(wrow.firstElementChild, ...Array.from({ length: n }, (_, i) => {
    const w = M.winnerOfRound(s, i);
    return h('td', { class: w ? `win-${w}` : '', text: w ? w.toUpperCase() : '' });
  }));
}

function pill(el, text) {
  el.hidden = !text;
  if (text) setText(el, text);
}

function render() {
  frame = 0;
  const s = latest;
  setText($('#sb-match'), M.matchLabel(s));
  setText($('#sb-round'), M.roundLabel(s));
  setText($('#sb-clock'), M.clockText(s));
  $('#sb-clock').classList.toggle('running', Boolean(s?.clock?.running));
  for (const side of M.SIDES) renderSide(s, side);
  renderRounds(s);
  pill($('#sb-injury'), M.injuryText(s));
  pill($('#sb-break'), M.breakText(s));
  pill($('#sb-timeout'), M.timeOutText(s));
  const list = $('#sb-challenges');
  const challenges = s?.challenges || [];
  if (list.dataset.key !== JSON.stringify(challenges)) {
    list.dataset.key = JSON.stringify(challenges);
    list.replaceChildren(...challenges.map((c) => h('li', { class: `ch ch-${c.side}`, text: M.challengeText(c) })));
    if (challenges.length) list.prepend(h('li', { class: 'ch-title', text: 'Challenges' }));
  }
  const winner = M.winnerText(s);
  const box = $('#sb-winner');
  box.hidden = !winner;
  box.className = `sb-winner ${M.winnerSide(s) ? `win-${M.winnerSide(s)}` : ''}`;
  if (winner) setText(box, winner);
}

let fallback = 0;
let pushed = false;

function flush() {
  cancelAnimationFrame(frame);
  clearTimeout(fallback);
  render();
}

function update(snapshot) {
  latest = snapshot;
  ctx.bus.emit('match_state', snapshot);
  if (frame) return;
  frame = requestAnimationFrame(flush);
  fallback = setTimeout(flush, 250);  // no animation frames while the window is hidden
}

export function init(c) {
  ctx = c;
  ctx.listen('pss_match_state', (snapshot) => {
    if (source && snapshot?.source !== source) return;  // another court
    pushed = true;
    update(snapshot);
  });
  ctx.bus.on('udp_stats', (stats) => fillSources(stats?.ui?.sources || []));
  $('#sb-source').addEventListener('change', async (ev) => {
    source = ev.target.value;
    overlayHint();
    try {
      update(await ctx.invoke('pss_get_match_state', source ? { source } : []));
    } catch (err) {
      toast(describe(err));
    }
  });
  overlayHint();
  render();
}

function fillSources(sources) {
  const select = $('#sb-source');
  const wanted = ['', ...sources];
  if (source && !wanted.includes(source)) wanted.push(source);
  const have = [...select.options].map((o) => o.value);
  if (have.join('|') === wanted.join('|')) return;
  select.replaceChildren(...wanted.map((s) => h('option', { value: s, text: s || 'Latest active' })));
  select.value = source;
}

function overlayHint() {
  const hint = $('#sb-overlay-hint');
  if (window.pywebview?.platform === 'http') {
    const token = new URLSearchParams(location.search).get('token') || sessionStorage.getItem('restrike_token') || '';
    const court = source ? `&source=${encodeURIComponent(source)}` : '';
    hint.textContent = `OBS browser source: ${location.origin}/overlay/scoreboard.html?token=${token}${court}`;
  } else {
    hint.textContent = 'OBS overlay: start restrike --headless and add /overlay/scoreboard.html?token=… as a browser source.';
  }
}

export async function load() {
  try {
    const snapshot = await ctx.invoke('pss_get_match_state');
    if (!pushed) update(snapshot);  // a push that arrived meanwhile is newer
  } catch (err) {
    toast(`No match state: ${describe(err)}`, 'info');
  }
}
