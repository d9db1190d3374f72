// The OBS overlay: a transparent scoreboard fed by pss_match_state pushes over /api/events.
// Works with ?token=TOKEN in its URL (api.js keeps it for the invoke and the event stream);
// ?source=IP:PORT follows one court (several PSS senders), ?court=NAME shows a court of the
// database (get_courts: any instance's court), ?compact=1 hides the round scores.

import { invoke, listen, ready } from '../api.js';
import * as M from '../scoreboard-model.js';

const $ = (id) => document.getElementById(id);
let latest = null;
let frame = 0;
let pushed = false;

function set(el, text) {
  const value = text == null ? '' : String(text);
  if (el.textContent !== value) el.textContent = value;
}

function renderSide(s, side) {
  const a = M.athlete(s, side);
  const { bg, fg } = M.sideColours(s, side);
  for (const cls of ['ov-country', 'ov-score']) {
    const el = $(`ov-${side}`).querySelector(`.${cls}`);
    el.style.backgroundColor = bg;  // CSSOM, allowed by the CSP
    el.style.color = fg;
  }
  set($(`ov-${side}-country`), a.country || (side === 'blue' ? 'B' : 'R'));
  set($(`ov-${side}-name`), a.short);
  set($(`ov-${side}-gj`), s?.warnings?.[side] ?? 0);
  set($(`ov-${side}-score`), s?.current_scores?.[side] ?? 0);
  const rounds = $(`ov-${side}-rounds`);
  const scores = s?.round_scores?.[side] || [];
  const key = JSON.stringify([scores, s?.round_winners]);
  if (rounds.dataset.key !== key) {
    rounds.dataset.key = key;
    rounds.replaceChildren(...scores.map((v, i) => {
      const span = document.createElement('span');
      span.textContent = String(v);
      if (M.winnerOfRound(s, i) === side) span.className = 'won';
      return span;
    }));
  }
}

function render() {
  frame = 0;
  const s = latest;
  $('ov').hidden = !s || (!s.loaded && !s.athletes?.blue && !s.athletes?.red);
  set($('ov-round'), M.roundLabel(s).replace('Round ', 'R').replace(/ of \d+/, ''));
  set($('ov-clock'), M.clockText(s));
  $('ov-clock').classList.toggle('running', Boolean(s?.clock?.running));
  for (const side of M.SIDES) renderSide(s, side);
  const b = s?.current_scores?.blue ?? 0;
  const r = s?.current_scores?.red ?? 0;
  $('ov-blue').classList.toggle('leading', b > r);
  $('ov-red').classList.toggle('leading', r > b);
  const info = [M.injuryText(s), M.breakText(s), M.timeOutText(s)].filter(Boolean).join(' · ');
  $('ov-info').hidden = !info;
  set($('ov-info'), info);
  const winner = M.winnerText(s);
  $('ov-winner').hidden = !winner;
  set($('ov-winner'), winner);
  document.documentElement.dataset.state = s ? 'live' : 'empty';
}

function update(snapshot) {
  latest = snapshot;
  if (!frame) frame = requestAnimationFrame(render);
}

async function main() {
  const params = new URLSearchParams(location.search);
  if (params.get('compact') === '1') document.body.classList.add('compact');
  // ?source=ip:port follows one court; without it, the court whose state changed last.
  const source = params.get('source') || '';
  // ?court=NAME shows that court's match from the database (get_courts), whichever instance
  // receives its feed: refreshed on courts_changed pushes and every 5 s.
  const court = params.get('court') || '';
  await ready;
  if (court) {
    const read = async () => {
      try {
        const found = (await invoke('get_courts')).courts.find((c) => c.court === court);
        update(M.courtSnapshot(found));
      } catch (err) {
        console.warn('overlay: courts not readable', err.message);
      }
    };
    listen('courts_changed', read);
    setInterval(read, 5000);
    await read();
    document.documentElement.dataset.ui = 'ready';
    return;
  }
  listen('pss_match_state', (snapshot) => {
    if (source && snapshot?.source !== source) return;
    pushed = true;
    update(snapshot);
  });
  try {
    // A court that has sent nothing yet has no state: wait for its first push instead.
    const known = source ? ((await invoke('get_udp_stats'))?.ui?.sources || []).includes(source) : true;
    const snapshot = known ? await invoke('pss_get_match_state', source ? { source } : []) : null;
    if (snapshot && !pushed) update(snapshot);
  } catch (err) {
    console.warn('overlay: no match state yet', err.message);
  }
  document.documentElement.dataset.ui = 'ready';
}

main();
