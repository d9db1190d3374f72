// Screen 1: the live events table.
//
// Pushes arrive as batches (listen('pss_event', list)) up to ~30 times a second; at 1000
// events/s a batch holds ~35 events. They are queued and rendered once per animation frame,
// newest on top. The DOM holds at most MAX_ROWS events; a bounded memory buffer (MAX_KEPT) keeps
// more so that changing a filter can refill the table. Anything beyond is dropped from the view
// only (the database has everything).

import { h, $, setText, toast } from './ui.js';
import { describe } from './errors.js';

const MAX_ROWS = 500;
const MAX_KEPT = 5000;

// Event type (parser's discriminator) -> filter kind.
const KIND_OF = {
  points: 'points', hit_level: 'hits', warnings: 'warnings',
  scores: 'scores', current_scores: 'scores',
  clock: 'clock', round: 'clock', break: 'clock', time_out: 'clock',
  athletes: 'match', match_config: 'match', fight_loaded: 'match', fight_ready: 'match',
  winner: 'match', winner_side: 'match', winner_rounds: 'match', referees: 'match',
  supremacy: 'match', avt: 'match',
  challenge: 'challenge', injury: 'challenge',
  hello: 'system', bye: 'system', hardware_test: 'system', scoreboard_setting: 'system',
  unknown: 'problems', invalid: 'problems',
};

let ctx;
let kept = [];             // normalised events of the current view, oldest first (bounded)
let pending = [];          // live events not yet rendered
let frame = 0;
let shown = 0;             // event rows in the DOM
let paused = false;
let onScreen = false;      // the Events tab is shown (else rows are not built at all)
let stale = false;         // the DOM lags the buffer (events arrived while hidden)
let view = 'live';         // 'live' or a match id
let liveKept = [];         // the live events while a stored match is shown
const filters = { colours: new Set(['blue', 'red', 'yellow']), kind: 'all' };
// Cost of this screen, for bench scripts and the devtools console (window.__restrikePerf).
const perf = { renders: 0, renderMs: 0, rebuilds: 0, rebuildMs: 0, refills: 0, received: 0 };
window.__restrikePerf = perf;
let body;
let emptyNote;

/** The UI event in one shape, whether it came from a push or from a stored match. */
export function normalise(e) {
  const type = e.type ?? e.event_type ?? e.category ?? 'unknown';
  const error = e.error ?? e.error_message ?? null;
  return {
    type,
    code: e.event_code ?? e.code ?? '',
    athlete: e.athlete ?? null,
    round: e.round ?? e.round_number ?? null,
    time: e.time ?? e.clock ?? null,
    timestamp: e.timestamp ?? e.received_at ?? e.created_at ?? null,
    raw: e.raw_data ?? e.raw ?? '',
    description: e.description ?? '',
    // Stored and pushed events mark unknown messages is_valid=false too; only 'invalid' ones
    // (a known message with a bad field) carry an error.
    invalid: type === 'invalid' || (e.is_valid === false && type !== 'unknown'),
    unknown: type === 'unknown',
    error,
    session: e.session_id ?? null,
    seq: e.seq ?? null,
    index: e.index ?? 0,
    id: e.id ?? null,
    source: e.source ?? null,
  };
}

export function colourOf(ev) {
  const a = ev.athlete;
  if (a === 'blue' || a === 1) return 'blue';
  if (a === 'red' || a === 2) return 'red';
  return 'yellow';
}

function matches(ev) {
  if (!filters.colours.has(colourOf(ev))) return false;
  const k = filters.kind;
  if (k === 'all') return true;
  if (k === 'noclock') return ev.type !== 'clock';
  if (k === 'problems') return ev.invalid || ev.unknown;
  return KIND_OF[ev.type] === k;
}

function rowsFor(ev) {
  const colour = colourOf(ev);
  const problem = ev.invalid;
  const unknown = ev.unknown;
  const cls = ['ev', `ev-${colour}`, problem ? 'ev-invalid' : '', unknown ? 'ev-unknown' : ''].filter(Boolean).join(' ');
  const shortRaw = ev.raw.length > 400 ? `${ev.raw.slice(0, 400)}…` : ev.raw;
  const title = problem
    ? `Invalid: ${ev.error || 'not understood'}\n${shortRaw}`
    : unknown ? `Unknown message, kept as received:\n${shortRaw}` : ev.raw;
  const tr = h('tr', { class: cls, title, dataset: { type: ev.type, code: ev.code } },
    h('td', { class: 'c-round', text: ev.round ?? '' }),
    h('td', { class: 'c-time', text: ev.time ?? '' }),
    h('td', { class: 'c-event' }, h('span', { class: `dot dot-${colour}`, 'aria-label': colour }),
      h('span', { class: 'code', text: ev.code || (unknown ? '?' : '–') })),
    h('td', { class: 'c-desc', text: ev.description || ev.raw }));
  if (!problem && !unknown) return [tr];
  const raw = ev.raw.length > 160 ? `${JSON.stringify(ev.raw.slice(0, 160))}… (${ev.raw.length} characters)` : JSON.stringify(ev.raw);
  const detail = problem
    ? `Error: ${ev.error || 'not understood'} · received: ${raw}`
    : `Not a known PSS message · received: ${raw}`;
  return [tr, h('tr', { class: `ev-detail ${problem ? 'ev-detail-invalid' : ''}` },
    h('td', { colSpan: 4, text: detail }))];
}

function trimTo(limit) {
  while (shown > limit && body.lastElementChild) {
    const last = body.lastElementChild;
    last.remove();
    if (last.classList.contains('ev-detail')) body.lastElementChild?.remove();
    shown -= 1;
  }
}

function updateCount() {
  setText($('#ev-count'), shown);
  emptyNote.hidden = shown > 0;
}

function renderPending() {
  if (frame > 0) cancelAnimationFrame(frame);
  clearTimeout(fallback);
  frame = 0;
  if (paused || !pending.length) return;
  const t0 = performance.now();
  const batch = pending;
  pending = [];
  const visible = [];
  for (const ev of batch) if (matches(ev)) visible.push(ev);
  const start = Math.max(0, visible.length - MAX_ROWS);
  const frag = document.createDocumentFragment();
  for (let i = visible.length - 1; i >= start; i -= 1) frag.append(...rowsFor(visible[i]));
  body.prepend(frag);
  shown += visible.length - start;
  trimTo(MAX_ROWS);
  updateCount();
  perf.renders += 1;
  perf.renderMs += performance.now() - t0;
}

let fallback = 0;
let lastRender = 0;
let renderCost = 0;  // ms the last render took, layout included (measured on the next frame)

// At most ~10 table updates a second, fewer when the machine is slow: a 1000 events/s feed
// then costs ten layouts a second instead of sixty, and nobody reads faster than that.
function schedule() {
  if (frame) return;
  const wait = Math.max(0, lastRender + Math.min(1000, Math.max(100, renderCost * 4)) - performance.now());
  frame = -1;  // scheduled
  fallback = setTimeout(() => {
    frame = requestAnimationFrame(() => {
      const start = performance.now();
      renderPending();
      lastRender = start;
      // the layout of what render changed happens before the next frame: measure it there
      requestAnimationFrame(() => { renderCost = performance.now() - start; });
    });
    // A hidden or minimised window gets no animation frames: render anyway.
    fallback = setTimeout(() => { if (frame) renderPending(); }, 500);
  }, wait);
}

/** Re-render the table from the kept buffer (after a filter or view change). */
function rebuild() {
  const t0 = performance.now();
  stale = false;
  body.replaceChildren();
  shown = 0;
  pending = [];
  const visible = [];
  for (let i = kept.length - 1; i >= 0 && visible.length < MAX_ROWS; i -= 1) {
    if (matches(kept[i])) visible.push(kept[i]);
  }
  const frag = document.createDocumentFragment();
  for (const ev of visible) frag.append(...rowsFor(ev));
  body.append(frag);
  shown = visible.length;
  updateCount();
  perf.rebuilds += 1;
  perf.rebuildMs += performance.now() - t0;
}

function keep(list) {
  for (const ev of list) kept.push(ev);
  if (kept.length > MAX_KEPT) kept = kept.slice(kept.length - MAX_KEPT);
}

// Gap detection: the UDP plugin pushes at most the newest 100 events of a dispatch batch, and a
// slow page may lose pushes; a hole in (session, seq, index) makes us refill from the plugin's
// ring of recent events (pss_get_events), at most once a second.
const lastPos = new Map();  // session -> [seq, index]
let refillTimer = 0;
let refillAt = 0;

function follows(prev, ev) {
  if (ev.seq == null) return true;
  if (!prev) return ev.seq === 1 && ev.index === 0;  // else we missed the session's start
  const [seq, index] = prev;
  return (ev.seq === seq && ev.index === index + 1) || (ev.seq === seq + 1 && ev.index === 0)
    || ev.seq < seq || (ev.seq === seq && ev.index <= index);  // replays are not holes
}

function noteGaps(list, detect = true) {
  let gap = false;
  for (const ev of list) {
    if (ev.session == null || ev.seq == null) continue;
    const prev = lastPos.get(ev.session);
    if (!follows(prev, ev)) gap = true;
    if (!prev || ev.seq > prev[0] || (ev.seq === prev[0] && ev.index > prev[1])) lastPos.set(ev.session, [ev.seq, ev.index]);
  }
  if (gap && detect) scheduleRefill();
}

function scheduleRefill() {
  if (refillTimer) return;
  const wait = Math.max(0, refillAt + 1000 - Date.now());
  refillTimer = setTimeout(refill, wait);
}

const keyOf = (ev) => `${ev.session}/${ev.seq}/${ev.index}`;
const order = (a, b) => (a.timestamp < b.timestamp ? -1 : a.timestamp > b.timestamp ? 1
  : (a.seq ?? 0) - (b.seq ?? 0) || (a.index ?? 0) - (b.index ?? 0));

async function refill() {
  refillAt = Date.now();
  perf.refills += 1;
  let recent;
  try {
    recent = (await ctx.invoke('pss_get_events')).map(normalise);
  } catch (err) {
    console.warn('refill failed', err);
    refillTimer = 0;
    return;
  }
  refillTimer = 0;
  const target = view === 'live' ? null : liveKept;
  const base = target ?? kept;
  const byKey = new Map(base.map((ev) => [keyOf(ev), ev]));
  let added = 0;
  for (const ev of recent) if (!byKey.has(keyOf(ev))) { byKey.set(keyOf(ev), ev); added += 1; }
  if (!added) return;
  const merged = [...byKey.values()].sort(order);
  const bounded = merged.slice(Math.max(0, merged.length - MAX_KEPT));
  for (const ev of bounded) {
    if (ev.session == null) continue;
    const p = lastPos.get(ev.session);
    if (!p || ev.seq > p[0] || (ev.seq === p[0] && ev.index > p[1])) lastPos.set(ev.session, [ev.seq, ev.index]);
  }
  if (target) { liveKept = bounded; return; }
  kept = bounded;
  if (paused || !onScreen) stale = true;
  else rebuild();
}

function onLive(batch) {
  const list = (Array.isArray(batch) ? batch : [batch]).map(normalise);
  perf.received += list.length;
  noteGaps(list);
  if (view !== 'live') {
    liveKept.push(...list);
    if (liveKept.length > MAX_KEPT) liveKept.splice(0, liveKept.length - MAX_KEPT);
    return;
  }
  keep(list);
  if (!onScreen) { stale = true; return; }  // rebuilt from the buffer when the tab shows
  for (const ev of list) pending.push(ev);
  if (pending.length > MAX_KEPT) pending = pending.slice(pending.length - MAX_KEPT);
  schedule();
}

function matchLabel(m) {
  const number = m.match_number ?? m.number ?? m.id;
  const blue = m.blue?.short_name ?? m.blue?.short;
  const red = m.red?.short_name ?? m.red?.short;
  const who = blue || red ? ` · ${blue ?? '?'} vs ${red ?? '?'}` : '';
  const when = m.loaded_at ? ` · ${String(m.loaded_at).slice(0, 16).replace('T', ' ')}` : '';
  const score = m.blue_score != null && m.red_score != null ? ` · ${m.blue_score}-${m.red_score}` : '';
  return `#${number}${who}${score}${when}`;
}

async function loadMatches() {
  const select = $('#ev-match');
  let list;
  try {
    list = await ctx.invoke('pss_get_matches');
  } catch (err) {
    toast(`Cannot list the stored matches: ${describe(err)}`);
    return;
  }
  const rows = Array.isArray(list) ? list : (list?.matches ?? []);
  const keepValue = select.value;
  select.replaceChildren(h('option', { value: 'live', text: 'Live feed' }),
    ...rows.map((m) => h('option', { value: String(m.id ?? m.match_id), text: matchLabel(m) })));
  select.value = [...select.options].some((o) => o.value === keepValue) ? keepValue : 'live';
  ctx.bus.emit('matches', rows);
}

async function showMatch(value) {
  if (value === 'live') {
    view = 'live';
    kept = liveKept;
    liveKept = [];
    setText($('#ev-source'), 'live');
    rebuild();
    return;
  }
  if (view === 'live') liveKept = kept;
  view = value;
  setText($('#ev-source'), `stored match, loading…`);
  let list;
  try {
    list = await ctx.invoke('pss_get_events_for_match', [Number(value)]);
  } catch (err) {
    toast(`Cannot load the events of this match: ${describe(err)}`);
    setText($('#ev-source'), 'stored match (failed to load)');
    return;
  }
  if (view !== value) return;  // another choice was made meanwhile
  const rows = Array.isArray(list) ? list : (list?.events ?? []);
  kept = [];
  keep(rows.map(normalise));
  setText($('#ev-source'), `stored match: ${rows.length} events${rows.length > MAX_KEPT ? ` (latest ${MAX_KEPT} kept)` : ''}`);
  rebuild();
}

export function init(c) {
  ctx = c;
  body = $('#ev-body');
  emptyNote = $('#ev-empty');
  ctx.listen('pss_event', onLive);
  ctx.bus.on('match_state', (s) => {
    setText($('#ev-round'), s?.round ?? '–');
    setText($('#ev-time'), s?.clock?.text ?? '–');
  });
  for (const chip of document.querySelectorAll('#panel-events .chip')) {
    chip.addEventListener('click', () => {
      const colour = chip.dataset.colour;
      const on = chip.getAttribute('aria-pressed') !== 'true';
      chip.setAttribute('aria-pressed', String(on));
      if (on) filters.colours.add(colour); else filters.colours.delete(colour);
      rebuild();
    });
  }
  $('#ev-kind').addEventListener('change', (ev) => { filters.kind = ev.target.value; rebuild(); });
  $('#ev-match').addEventListener('change', (ev) => showMatch(ev.target.value));
  $('#ev-match').addEventListener('focus', () => { if ($('#ev-match').options.length <= 1) loadMatches(); });
  $('#ev-matches-refresh').addEventListener('click', loadMatches);
  $('#ev-pause').addEventListener('click', (ev) => {
    paused = !paused;
    ev.currentTarget.setAttribute('aria-pressed', String(paused));
    ev.currentTarget.textContent = paused ? 'Resume' : 'Pause';
    if (paused) {
      setText($('#ev-source'), view === 'live' ? 'live (paused)' : $('#ev-source').textContent);
    } else {
      if (view === 'live') setText($('#ev-source'), 'live');
      rebuild();  // catch up from the buffer instead of replaying every missed frame
    }
  });
  $('#ev-clear').addEventListener('click', () => { kept = []; pending = []; if (view === 'live') liveKept = []; rebuild(); });
  updateCount();
}

export async function load() {
  // What arrived before the page opened: the plugin's ring of recent events.
  const recent = ctx.invoke('pss_get_events').then((list) => {
    if (!Array.isArray(list) || !list.length) return;
    const evs = list.map(normalise);
    noteGaps(evs, false);  // the ring is all there is: its own start is not a hole
    const known = new Set(kept.map(keyOf));
    kept = [...evs.filter((ev) => !known.has(keyOf(ev))), ...kept].sort(order);
    if (kept.length > MAX_KEPT) kept = kept.slice(kept.length - MAX_KEPT);
    if (view === 'live') rebuild();
  }).catch((err) => console.warn('no recent events', err));
  await Promise.all([loadMatches(), recent]);
}
export function show() {
  onScreen = true;
  if (stale && !paused) rebuild();
}

export function hide() { onScreen = false; }
