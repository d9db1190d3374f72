// Screen 6: statistics of a match, an athlete, a tournament, drawn with Chart.js (vendor/).
//
// Every chart writes the numbers it draws into its canvas's data-chart attribute
// ({labels, datasets: [{label, data}]}), so tests and the curious can check them without
// reading pixels. The tournament view's event-rate chart follows the push stream: new events
// reload it at most every RATE_REFRESH_MS while the view is shown.

import { h, $, $$, setText, toast, fillDl } from './ui.js';
import { chooseFile, datedName, downloads, saveWith } from './savefile.js';

const RATE_REFRESH_MS = 5000;
const POINT_KEYS = ['punch', 'body', 'head', 'technical_body', 'technical_head'];
const POINT_LABELS = ['Punch', 'Body', 'Head', 'Technical body', 'Technical head'];
const TECHNIQUE_COLOURS = ['#9aa5b1', '#4fc3f7', '#ffd84d', '#ba68c8', '#ff8a65'];
const COURT_COLOURS = ['#58a6ff', '#ff7b72', '#7ee787', '#ffd84d', '#d2a8ff', '#ffa657', '#79c0ff', '#f778ba'];

let ctx;
let view = 'match';
let visible = false;
let lastRateLoad = 0;
let rateTimer = null;
let tournamentAsked = 0;
const charts = new Map();

function css(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}

function themeCharts() {
  const Chart = window.Chart;
  if (!Chart) return;
  Chart.defaults.color = css('--chart-text') || '#c9d3de';
  Chart.defaults.borderColor = css('--chart-grid') || '#344050';
  Chart.defaults.font.size = 14;
  Chart.defaults.animation = false;  // the numbers are what matters, and tests read them
}

function axis(title, extra = {}) {
  return { title: { display: true, text: title, font: { weight: 'bold' } }, ...extra };
}

/** Draw (or redraw) the chart of canvas `id`; its data also goes into data-chart. */
function draw(id, type, labels, datasets, xTitle, yTitle, options = {}) {
  const canvas = document.getElementById(id);
  const data = { labels, datasets: datasets.map((d) => ({ ...d })) };
  canvas.dataset.chart = JSON.stringify({
    labels, datasets: datasets.map((d) => ({ label: d.label, data: d.data, stack: d.stack ?? null })),
  });
  const config = {
    type,
    data,
    options: {
      responsive: true,
      maintainAspectRatio: false,
      interaction: { mode: 'index', intersect: false },
      plugins: { legend: { position: 'bottom' } },
      scales: {
        x: axis(xTitle, { stacked: options.stacked ?? false }),
        y: axis(yTitle, { beginAtZero: true, stacked: options.stacked ?? false, ticks: { precision: 0 } }),
      },
    },
  };
  const existing = charts.get(id);
  if (existing) {
    existing.data = data;
    existing.options = config.options;
    existing.update();
  } else if (window.Chart) {
    charts.set(id, new window.Chart(canvas, config));
  }
}

// -- match view --------------------------------------------------------------------------------

function matchLabel(m) {
  const names = [m.blue_athlete ?? m.athletes?.blue?.short, m.red_athlete ?? m.athletes?.red?.short].filter(Boolean).join(' – ');
  return `#${m.id ?? m.match_id}${m.match_number ? ` · ${m.match_number}` : ''}${names ? ` · ${names}` : ''}${m.status ? ` · ${m.status}` : ''}`;
}

async function loadMatches() {
  const select = $('#st-match-select');
  let list = [];
  try { list = await ctx.invoke('pss_get_matches', [100]); } catch (err) { toast(`Cannot list the matches: ${err.message}`); }
  const keep = select.value;  // read after the wait: the operator may have picked one meanwhile
  select.replaceChildren(...(list.length ? list.map((m) => h('option', { value: String(m.id ?? m.match_id), text: matchLabel(m) }))
    : [h('option', { value: '', text: 'No matches yet' })]));
  if ([...select.options].some((o) => o.value === keep)) select.value = keep;
}

function hits(s) {
  const l = s.hit_levels;
  return l.count ? `${l.count} (${l.mean} / ${l.max})` : '–';
}

async function loadMatch() {
  const id = Number($('#st-match-select').value);
  if (!id) return;
  let s;
  try { s = await ctx.invoke('get_match_statistics', [id]); } catch (err) { toast(`Cannot load match ${id}: ${err.message}`); return; }
  if (Number($('#st-match-select').value) !== id) return;  // another match was picked meanwhile
  const blue = s.athletes.blue?.short ?? 'Blue';
  const red = s.athletes.red?.short ?? 'Red';
  setText($('#st-match-summary'), `${blue} ${s.total.blue.points} – ${s.total.red.points} ${red}`
    + `${s.winner ? ` · winner ${s.winner}${s.win_type ? ` (${s.win_type})` : ''}` : ` · ${s.status}`}`);
  $('#st-match').dataset.matchId = String(s.match_id);
  const tl = s.timeline;
  draw('st-timeline', 'line', tl.map((t) => `R${t.round ?? '–'} ${t.clock ?? ''}`.trim()), [
    { label: `${blue} (blue)`, data: tl.map((t) => t.blue), borderColor: css('--blue'), backgroundColor: css('--blue'), stepped: true },
    { label: `${red} (red)`, data: tl.map((t) => t.red), borderColor: css('--red'), backgroundColor: css('--red'), stepped: true },
  ], 'Match time (round, clock)', 'Score (points)');
  const columns = s.rounds.flatMap((r) => [[`R${r.round} blue`, r.blue], [`R${r.round} red`, r.red]]);
  draw('st-techniques', 'bar', columns.map(([label]) => label), POINT_KEYS.map((k, i) => ({
    label: POINT_LABELS[i], data: columns.map(([, side]) => side.points_by_type[k]), backgroundColor: TECHNIQUE_COLOURS[i],
  })), 'Round and side', 'Scoring actions (count)', { stacked: true });
  const buckets = s.total.blue.hit_levels.histogram.map((_, i) => `${i * 10 + 1}–${i * 10 + 10}`);
  draw('st-hits', 'bar', buckets, [
    { label: `${blue} (blue)`, data: s.total.blue.hit_levels.histogram, backgroundColor: css('--blue') },
    { label: `${red} (red)`, data: s.total.red.hit_levels.histogram, backgroundColor: css('--red') },
  ], 'Hit level (sensor units)', 'Hits (count)');
  $('#st-rounds-body').replaceChildren(...[...s.rounds, { round: 'Total', winner: s.winner, ...s.total }].map((r) => h('tr', {},
    h('td', { text: r.round }), h('td', { text: r.winner ?? '–' }),
    h('td', { text: r.blue.points }), h('td', { text: r.red.points }),
    h('td', { text: r.blue.gam_jeom }), h('td', { text: r.red.gam_jeom }),
    h('td', { text: hits(r.blue) }), h('td', { text: hits(r.red) }))));
  $('#st-tech-body').replaceChildren(...[...s.rounds, { round: 'Total', ...s.total }].flatMap((r) => ['blue', 'red'].map((side) => h('tr', {},
    h('td', { text: r.round }), h('td', { text: side }),
    ...POINT_KEYS.map((k) => h('td', { text: r[side].points_by_type[k] }))))));
}

// -- printing: the match view as a one-page report, charts redrawn in ink colours ---------------

function inkCharts(ink) {
  const Chart = window.Chart;
  if (!Chart) return;
  const colour = ink ? '#000' : (css('--chart-text') || '#c9d3de');
  const grid = ink ? '#bbb' : (css('--chart-grid') || '#344050');
  for (const chart of charts.values()) {
    for (const scale of Object.values(chart.options.scales || {})) {
      scale.ticks = { ...scale.ticks, color: colour };
      scale.title = { ...scale.title, color: colour };
      scale.grid = { ...scale.grid, color: grid };
    }
    chart.options.plugins.legend.labels = { ...chart.options.plugins.legend.labels, color: colour };
    chart.update();
  }
}

// -- athlete view ------------------------------------------------------------------------------

let searchTimer = null;

async function loadAthletes() {
  const select = $('#st-athlete-select');
  const search = $('#st-athlete-search').value.trim();
  let list = [];
  try { list = await ctx.invoke('get_athletes', search ? { search } : {}); } catch (err) { toast(`Cannot list the athletes: ${err.message}`); }
  if ($('#st-athlete-search').value.trim() !== search) return;  // the search changed meanwhile
  const keep = select.value;  // read after the wait: the operator may have picked one meanwhile
  select.replaceChildren(...(list.length ? list.map((a) => h('option', { value: String(a.id), text: `${a.short}${a.country ? ` (${a.country})` : ''} · ${a.wins}–${a.losses}` }))
    : [h('option', { value: '', text: 'No athlete found' })]));
  if ([...select.options].some((o) => o.value === keep)) select.value = keep;
  await loadAthlete();
}

async function loadAthlete() {
  const id = Number($('#st-athlete-select').value);
  if (!id) return;
  let s;
  try { s = await ctx.invoke('get_athlete_statistics', [id]); } catch (err) { toast(`Cannot load athlete ${id}: ${err.message}`); return; }
  if (Number($('#st-athlete-select').value) !== id) return;  // another athlete was picked meanwhile
  $('#st-athlete').dataset.athleteId = String(id);
  setText($('#st-athlete-summary'), `${s.athlete.long || s.athlete.short}${s.athlete.country ? ` · ${s.athlete.country}` : ''}`);
  fillDl($('#st-athlete-record'), [
    ['Matches', String(s.matches), 'matches'], ['Wins – losses', `${s.wins} – ${s.losses}`, 'record'],
    ['Rounds won – lost', `${s.rounds_won} – ${s.rounds_lost}`, 'rounds'],
    ['Points for – against', `${s.points_for} – ${s.points_against}`, 'points'],
    ['Gam-jeom received – given', `${s.penalties_received} – ${s.penalties_given}`, 'penalties'],
    ['Hit level mean / max', s.hit_levels.count ? `${s.hit_levels.mean} / ${s.hit_levels.max}` : '–', 'hits'],
    ['Win types', s.win_types.map((w) => `${w.win_type} ${w.wins}–${w.losses}`).join(', ') || '–', 'win_types'],
  ]);
  draw('st-athlete-mix', 'bar', POINT_LABELS, [
    { label: 'Scored', data: POINT_KEYS.map((k) => s.points_scored_by_type[k]), backgroundColor: css('--ok') },
    { label: 'Conceded', data: POINT_KEYS.map((k) => s.points_conceded_by_type[k]), backgroundColor: css('--bad') },
  ], 'Technique', 'Scoring actions (count)');
  $('#st-athlete-matches-body').replaceChildren(...s.match_list.map((m) => h('tr', {},
    h('td', { text: `#${m.match_id}${m.match_number ? ` · ${m.match_number}` : ''}` }), h('td', { text: m.side }),
    h('td', { text: m.opponent?.short ?? '–' }), h('td', { text: m.result ?? m.status }),
    h('td', { text: m.win_type ?? '–' }), h('td', { text: `${m.points_for} – ${m.points_against}` }),
    h('td', { text: m.category ?? '–' }))));
}

// -- tournament view ---------------------------------------------------------------------------

async function loadTournaments() {
  const select = $('#st-tournament-select');
  let list = [];
  try { list = await ctx.invoke('tournament_get_all'); } catch (err) { toast(`Cannot list the tournaments: ${err.message}`); }
  const keep = select.value;  // read after the wait: the operator may have picked one meanwhile
  select.replaceChildren(h('option', { value: '', text: 'All matches' }),
    ...list.map((t) => h('option', { value: String(t.id), text: t.name })));
  if ([...select.options].some((o) => o.value === keep)) select.value = keep;
  await loadDays();
}

async function loadDays() {
  const select = $('#st-day-select');
  const t = Number($('#st-tournament-select').value);
  let days = [];
  if (t) {
    try { days = await ctx.invoke('tournament_get_days', [t]); } catch (err) { toast(`Cannot list the days: ${err.message}`); }
  }
  const keep = select.value;
  select.replaceChildren(h('option', { value: '', text: 'Every day' }),
    ...days.map((d) => h('option', { value: String(d.id), text: `Day ${d.day_number}${d.date ? ` · ${d.date}` : ''}` })));
  if ([...select.options].some((o) => o.value === keep)) select.value = keep;
  select.disabled = !t;
}

async function loadTournament() {
  const args = {};
  const t = Number($('#st-tournament-select').value);
  const d = Number($('#st-day-select').value);
  if (t) args.tournamentId = t;
  if (d) args.dayId = d;
  let s;
  const asked = ++tournamentAsked;
  try { s = await ctx.invoke('get_tournament_statistics', args); } catch (err) { toast(`Cannot load the tournament statistics: ${err.message}`); return; }
  if (asked !== tournamentAsked) return;  // a newer answer is coming
  lastRateLoad = Date.now();
  const duration = s.duration_s.mean == null ? 'no finished match'
    : `${fmtSeconds(s.duration_s.mean)} mean, ${fmtSeconds(s.duration_s.p90)} p90 match duration`;
  setText($('#st-tournament-summary'), `${s.matches} matches: ${s.finished} finished, ${s.in_progress} in progress · `
    + `${duration} · ${s.penalties_per_match ?? '–'} gam-jeom per match`
    + `${s.pending_rebuild ? ' · older events not counted yet: press Rebuild' : ''}`);
  const courts = s.per_court.map((c) => c.court);
  const hours = s.per_hour.map((x) => x.hour.slice(11, 16));
  draw('st-per-hour', 'bar', hours, courts.map((court, i) => ({
    label: court, data: s.per_hour.map((x) => x.by_court[court] ?? 0), backgroundColor: COURT_COLOURS[i % COURT_COLOURS.length],
  })), 'Hour (UTC)', 'Matches (count)', { stacked: true });
  const kinds = Object.keys(s.win_types);
  draw('st-win-types', 'bar', kinds, [
    { label: 'Finished matches', data: kinds.map((k) => s.win_types[k]), backgroundColor: css('--yellow') },
  ], 'Win type', 'Matches (count)');
  // every minute of the last hour on the axis, so quiet minutes show as zero
  const start = Date.parse(s.event_rates.since);
  const minutes = Array.from({ length: 61 }, (_, i) => `${new Date(start + i * 60000).toISOString().slice(0, 16)}Z`);
  draw('st-rates', 'line', minutes.map((m) => m.slice(11, 16)), Object.entries(s.event_rates.per_court).map(([court, rows], i) => {
    const by = new Map(rows.map((r) => [r.minute, r.events]));
    const colour = COURT_COLOURS[i % COURT_COLOURS.length];
    return { label: court, data: minutes.map((m) => by.get(m) ?? 0), borderColor: colour, backgroundColor: colour };
  }), 'Minute (UTC)', 'Events per minute');
}

/** 95 -> "1 min 35 s", 42.5 -> "43 s". */
function fmtSeconds(seconds) {
  const s = Math.round(seconds);
  return s < 60 ? `${s} s` : `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, '0')} s`;
}

function onPushedEvents() {
  // New events change the live rates: reload, at most every RATE_REFRESH_MS, only when shown.
  if (!visible || view !== 'tournament' || rateTimer) return;
  const wait = Math.max(0, lastRateLoad + RATE_REFRESH_MS - Date.now());
  rateTimer = setTimeout(() => { rateTimer = null; loadTournament(); }, wait);
}

// -- the screen --------------------------------------------------------------------------------

function selectView(name) {
  view = name;
  for (const b of $$('#panel-statistics [data-view].btn')) b.setAttribute('aria-pressed', String(b.dataset.view === name));
  for (const v of $$('#panel-statistics .stat-view')) v.hidden = v.dataset.view !== name;
  $('#panel-statistics').dataset.view = name;
  return refresh();
}

async function refresh() {
  if (view === 'match') { await loadMatches(); await loadMatch(); }
  else if (view === 'athlete') await loadAthletes();
  else { await loadTournaments(); await loadTournament(); }
  $('#panel-statistics').dataset.loaded = String(Date.now());
}

async function rebuild() {
  const button = $('#st-rebuild');
  button.disabled = true;
  try {
    const r = await ctx.invoke('rebuild_statistics');
    toast(`Statistics rebuilt from ${r.events} events (${r.matches} matches) in ${r.seconds} s`, 'ok');
    await refresh();
  } catch (err) {
    toast(`Rebuild failed: ${err.message}`);
  } finally {
    button.disabled = false;
  }
}

/** Export through the event export's path (savefile.js): a download in a browser, the file
 * chosen (native "Save as", or typed) in the window. */
async function exportStatistics(ev) {
  ev.preventDefault();
  const form = ev.currentTarget;
  const kind = $('#st-export-kind').value;
  const format = $('#st-export-format').value;
  const r = await saveWith(form, 'export_statistics', { kind, format }, {
    path: $('#st-export-path').value.trim(), overwrite: $('#st-export-overwrite').checked,
    filename: datedName(`statistics-${kind}`, format),
  });
  if (r !== undefined) toast(`${r.rows} rows written to ${r.path}`, 'ok');
}

function chooseExportFile() {
  return chooseFile($('#st-export-form'), $('#st-export-path'), $('#st-export-overwrite'),
    datedName(`statistics-${$('#st-export-kind').value}`, $('#st-export-format').value));
}

export function init(c) {
  ctx = c;
  themeCharts();
  for (const b of $$('#panel-statistics [data-view].btn')) b.addEventListener('click', () => selectView(b.dataset.view));
  $('#st-match-select').addEventListener('change', loadMatch);
  $('#st-match-refresh').addEventListener('click', () => refresh());
  $('#st-athlete-select').addEventListener('change', loadAthlete);
  $('#st-athlete-search').addEventListener('input', () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(loadAthletes, 250);
  });
  $('#st-tournament-select').addEventListener('change', async () => { await loadDays(); await loadTournament(); });
  $('#st-day-select').addEventListener('change', loadTournament);
  $('#st-rebuild').addEventListener('click', rebuild);
  $('#st-export-form').addEventListener('submit', exportStatistics);
  $('#st-export-choose').addEventListener('click', chooseExportFile);
  if (downloads()) $('#st-export-form').classList.add('export-download');
  $('#st-match-print').addEventListener('click', () => window.print());
  window.addEventListener('beforeprint', () => inkCharts(true));
  window.addEventListener('afterprint', () => inkCharts(false));
  // print previews and headless PDF rendering switch the media without those events
  window.matchMedia('print').addEventListener('change', (ev) => inkCharts(ev.matches));
  ctx.listen('pss_event', onPushedEvents);
}

export function show() {
  visible = true;
  refresh();
}

export function hide() {
  visible = false;
}
