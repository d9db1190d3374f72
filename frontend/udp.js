// Screen 3: the UDP server — status, start/stop with bind address and port, counters, senders,
// sessions, an events-per-second chart of the last minutes, and the match simulator.
//
// get_udp_stats is polled every second whatever the visible screen (the chart needs a sample
// every second, and the top bar shows the server state); the chart is drawn only when visible.

import { h, $, setText, runFor, poller, fmtNumber, fmtAgo, fmtDateTime, fillDl, toast } from './ui.js';
import { describe, centralStatus } from './errors.js';

const HISTORY = 300;  // seconds of chart
let ctx;
let statsPoll;
let visible = false;
let last = null;        // {t, events} of the previous sample
const rates = [];       // events per second, oldest first
let formTouched = false;
let latestStats = null;
let settings = null;      // get_udp_settings(): what Start uses
let sessionsAt = 0;

const isRunning = (stats) => stats?.status === 'Running';
const isSimulating = (stats) => Boolean(stats?.simulation?.running);

function counters(stats) {
  return {
    received: stats?.datagrams,
    events: stats?.events,
    stored: stats?.storage?.stored,
    invalid: stats?.events_invalid,
    unknown: stats?.events_unknown,
    dropped: stats?.queue_dropped,
    storageDropped: stats?.storage?.dropped,
    pending: stats?.storage?.pending,
    queued: stats?.queue_depth,
    storageWaits: stats?.storage?.waits,
    held: stats?.storage?.held,
    spooled: stats?.storage?.spool?.depth?.events,
    spoolDropped: stats?.storage?.spool?.dropped,
    lost: stats?.storage?.lost,
    storageError: stats?.storage?.last_error ?? undefined,
    kernelDrops: stats?.kernel_drops ?? undefined,
    rejected: stats?.rejected,
    trimmed: stats?.ui?.trimmed,
    // kept raw, invalid, because they broke a parser limit (get_udp_stats.over_limits)
    overMessage: stats?.over_limits
      && (stats.over_limits.max_fields_per_message + stats.over_limits.max_field_length),
    overDatagram: stats?.over_limits?.max_messages_per_datagram,
    ringDropped: stats?.ui?.ring_dropped_for_bytes,
    cachesEmptied: (stats?.parse_cache?.clears ?? 0) + (stats?.storage?.shape_cache?.clears ?? 0),
  };
}

function renderStatus(stats) {
  const running = isRunning(stats);
  const sim = isSimulating(stats) || Boolean(stats?.session?.simulated && running);
  const bind = stats?.bind;
  const port = stats?.port ?? stats?.session?.port;
  const status = $('#udp-status');
  let text;
  if (running) text = `Listening on ${bind}:${port}`;
  else if (stats?.status === 'Error') text = `Error: ${stats.error || 'the server failed'}`;
  else text = stats?.status === 'Starting' ? 'Starting…' : 'Stopped';
  setText(status, text);
  status.classList.toggle('status-on', running);
  status.classList.toggle('status-off', !running);
  // a saved address that did not bind at start-up: the server listens on the default instead
  const problem = $('#udp-settings-problem');
  setText(problem, stats?.settings_problem ?? '');
  problem.hidden = !stats?.settings_problem;
  const top = $('#top-udp');
  setText(top, running ? `${sim ? 'SIMULATED' : 'UDP'} :${port ?? ''}` : stats?.status === 'Error' ? 'UDP error' : 'UDP stopped');
  top.title = sim ? `${text} (simulated feed)` : text;
  top.classList.toggle('pill-on', running && !sim);
  top.classList.toggle('pill-sim', running && sim);
  top.classList.toggle('pill-bad', !running);
  const central = $('#central-banner');
  const line = centralStatus(stats?.storage?.spool, fmtNumber, fmtDateTime);
  setText(central, line);
  central.hidden = !line;
  const banner = $('#udp-sim-banner');
  banner.hidden = !sim;
  if (sim && stats?.simulation) {
    const s = stats.simulation;
    setText(banner, `SIMULATED FEED — ${s.running ? 'the built-in simulator is sending' : 'this session received'} simulated matches`
      + ` (${fmtNumber(s.sent)} datagrams sent${s.matches ? `, ${s.matches_done}/${s.matches} matches` : ''}), not a PSS`);
  }
  $('#udp-simulate').hidden = isSimulating(stats);
  $('#udp-simulate').disabled = !running;
  $('#udp-simulate-stop').hidden = !isSimulating(stats);
  $('#udp-stop').disabled = !running;
  updateStartButton(running);
  document.documentElement.dataset.udp = running ? 'running' : (stats?.status || 'stopped').toLowerCase();
  if (!formTouched) {
    const wantBind = settings?.bind ?? bind;
    const wantPort = running ? port : (settings?.port ?? port);
    if (wantBind != null && $('#udp-bind').value !== String(wantBind)) $('#udp-bind').value = wantBind;
    if (wantPort != null && $('#udp-port').value !== String(wantPort)) $('#udp-port').value = wantPort;
  }
}

/** Start when stopped; while running the button only appears to apply an edited address. */
function updateStartButton(running = isRunning(latestStats)) {
  const button = $('#udp-start');
  button.textContent = running ? 'Apply address (restarts)' : 'Start';
  button.hidden = running && !formTouched;
}

function renderCounters(stats) {
  const c = counters(stats);
  const rows = [
    ['Datagrams received', c.received, 'received'],
    ['Events', c.events, 'events'],
    ['Stored', c.stored, 'stored'],
    ['Invalid', c.invalid, 'invalid'],
    ['Unknown', c.unknown, 'unknown'],
    ['Messages over a field limit (stored raw)', c.overMessage, 'over_message_limits'],
    ['Datagrams over the message cap (rest stored raw)', c.overDatagram, 'over_message_cap'],
    ['Dropped (queue full)', c.dropped, 'dropped'],
    ['Dropped (storage)', c.storageDropped, 'storage_dropped'],
    ['Waiting to be stored', c.pending, 'pending'],
    ['Waiting to be parsed (backlog)', c.queued || undefined, 'queue_depth'],
    ['Times ingest waited for storage', c.storageWaits || undefined, 'storage_waits'],
    ['Held for a retry (write failed)', c.held || undefined, 'held'],
    ['Waiting for the central database (kept on this computer)', c.spooled || undefined, 'spooled'],
    ['Dropped (local spool full)', c.spoolDropped || undefined, 'spool_dropped'],
    ['Lost', c.lost || undefined, 'lost'],
    ['Kernel drops', c.kernelDrops, 'kernel_drops'],
    ['Refused sources', c.rejected, 'rejected'],
    ['Trimmed from live pushes', c.trimmed, 'trimmed'],
    ['Live events dropped (ring bytes full)', c.ringDropped || undefined, 'ring_dropped'],
    ['Parse caches emptied (full)', c.cachesEmptied || undefined, 'caches_emptied'],
  ].filter(([, v]) => v !== undefined);
  const entries = rows.map(([k, v, id]) => [k, fmtNumber(v), id]);
  if (c.storageError) entries.push(['Last storage error', c.storageError, 'storage_error']);
  fillDl($('#udp-counters'), entries);
}

function renderClients(stats) {
  const list = stats?.clients ?? [];
  const now = Date.now();
  $('#udp-clients-body').replaceChildren(...list.map((c) => h('tr', {},
    h('td', { text: `${c.address ?? c.source_ip ?? c.ip}:${c.port ?? c.source_port ?? ''}` }),
    h('td', { text: fmtNumber(c.packets ?? c.datagrams) }),
    h('td', { text: fmtNumber(c.events) }),
    h('td', { text: fmtAgo(c.last_seen, now), title: fmtDateTime(c.last_seen) }))));
  $('#udp-clients-empty').hidden = list.length > 0;
}

async function refreshSessions(current) {
  let stats;
  try { stats = await ctx.invoke('get_udp_server_statistics'); } catch { return; }
  const list = stats?.recent_sessions ?? [];
  $('#udp-sessions-body').replaceChildren(...list.slice(0, 8).map((s) => h('tr', { class: s.session_id === current ? 'row-active' : '' },
    h('td', { text: fmtDateTime(s.started_at) }),
    h('td', { text: `${s.bind_address ?? ''}:${s.port ?? ''}` }),
    h('td', { text: s.status ?? (s.stopped_at ? 'stopped' : 'running') }),
    h('td', { text: fmtNumber(s.packets_received) }),
    h('td', { class: s.is_simulated ? 'sim' : '', text: s.is_simulated ? 'SIMULATED' : 'live' }))));
  $('#udp-sessions').hidden = list.length === 0;
}

function sample(stats) {
  const t = performance.now();
  const total = Number(counters(stats).events ?? counters(stats).received ?? 0);
  if (last) {
    const dt = (t - last.t) / 1000;
    const delta = total - last.total;
    // A restarted server starts its counters again: count what the new one has seen.
    rates.push(dt > 0 ? Math.max(0, delta < 0 ? total : delta) / dt : 0);
    if (rates.length > HISTORY) rates.shift();
  }
  last = { t, total };
  const now = rates.length ? rates[rates.length - 1] : 0;
  setText($('#udp-rate-now'), `now ${now.toFixed(0)}/s · peak ${Math.max(0, ...rates).toFixed(0)}/s`);
}

function drawChart() {
  const canvas = $('#udp-chart');
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth;
  const hgt = canvas.clientHeight;
  if (!w || !hgt) return;
  if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(hgt * dpr)) {
    canvas.width = Math.round(w * dpr);
    canvas.height = Math.round(hgt * dpr);
  }
  const g = canvas.getContext('2d');
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  g.clearRect(0, 0, w, hgt);
  const css = getComputedStyle(canvas);
  const grid = css.getPropertyValue('--chart-grid').trim() || '#30363d';
  const line = css.getPropertyValue('--chart-line').trim() || '#58a6ff';
  const text = css.getPropertyValue('--chart-text').trim() || '#c9d1d9';
  const left = 48; const bottom = 22; const top = 8;
  const plotW = w - left - 8; const plotH = hgt - bottom - top;
  const max = Math.max(5, ...rates);
  const nice = 10 ** Math.floor(Math.log10(max));
  const ymax = Math.ceil(max / nice) * nice;
  g.font = '13px system-ui, sans-serif';
  g.fillStyle = text;
  g.strokeStyle = grid;
  g.lineWidth = 1;
  for (let i = 0; i <= 4; i += 1) {
    const y = top + plotH - (plotH * i) / 4;
    g.beginPath(); g.moveTo(left, y); g.lineTo(left + plotW, y); g.stroke();
    g.textAlign = 'right'; g.textBaseline = 'middle';
    g.fillText(String(Math.round((ymax * i) / 4)), left - 6, y);
  }
  g.textBaseline = 'top';
  const minutes = HISTORY / 60;
  for (let m = 0; m <= minutes; m += 1) {
    const x = left + plotW - (plotW * m * 60) / HISTORY;
    g.textAlign = m === 0 ? 'right' : m === minutes ? 'left' : 'center';
    g.fillText(m === 0 ? 'now' : `-${m} min`, x, top + plotH + 4);
  }
  if (!rates.length) return;
  g.strokeStyle = line;
  g.lineWidth = 2;
  g.beginPath();
  rates.forEach((r, i) => {
    const x = left + plotW - (plotW * (rates.length - 1 - i)) / HISTORY;
    const y = top + plotH - (plotH * Math.min(r, ymax)) / ymax;
    if (i === 0) g.moveTo(x, y); else g.lineTo(x, y);
  });
  g.stroke();
}

async function refresh() {
  let stats;
  try {
    stats = await ctx.invoke('get_udp_stats');
  } catch (err) {
    setText($('#udp-status'), `No UDP plugin: ${describe(err)}`);
    document.documentElement.dataset.udp = 'unavailable';
    return;
  }
  latestStats = stats;
  sample(stats);
  renderStatus(stats);
  ctx.bus.emit('udp_stats', stats);
  if (visible) {
    renderCounters(stats);
    renderClients(stats);
    drawChart();
    const session = stats?.session?.session_id;
    if (session !== lastSession || Date.now() - sessionsAt > 5000) {
      lastSession = session;
      sessionsAt = Date.now();
      refreshSessions(session);
    }
  }
}
let lastSession;

async function loadSettings() {
  try { settings = await ctx.invoke('get_udp_settings'); } catch { settings = null; }
}

function portValue() {
  const t = $('#udp-port').value.trim();
  return /^-?\d+$/.test(t) ? Number(t) : t;  // as typed otherwise: the command names the problem
}

export function init(c) {
  ctx = c;
  statsPoll = poller(refresh, 1000);
  for (const id of ['#udp-bind', '#udp-port']) $(id).addEventListener('input', () => { formTouched = true; updateStartButton(); });
  $('#udp-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const form = ev.currentTarget;
    await loadSettings();
    const bind = $('#udp-bind').value.trim();
    const port = portValue();
    const running = isRunning(latestStats);
    const current = running ? { bind: latestStats.bind, port: latestStats.port } : settings;
    if (!current || current.bind !== bind || current.port !== port) {
      // A running server restarts on the new address (a new session); a bad value or a port
      // in use changes nothing and is shown next to its field.
      const r = await runFor(form, 'update_udp_settings', { settings: { bind, port } });
      if (r === undefined) return;
      settings = r;
    }
    if (!running) {
      const r = await runFor(form, 'start_udp_server', []);
      if (r === undefined) { statsPoll.now(); return; }
    }
    formTouched = false;
    updateStartButton();
    toast(running ? `UDP server now on ${bind}:${port}.` : 'UDP server started.', 'ok', 3000);
    statsPoll.now();
  });
  $('#udp-stop').addEventListener('click', async () => {
    const r = await runFor($('#udp-form'), 'stop_udp_server', []);
    if (r !== undefined) toast('UDP server stopped: incoming datagrams are not received.', 'info', 4000);
    statsPoll.now();
  });
  $('#udp-simulate').addEventListener('click', async () => {
    const r = await runFor($('#udp-form'), 'simulate_match', []);
    if (r !== undefined) toast('Simulated match started: its events are marked SIMULATED.', 'info', 4000);
    statsPoll.now();
  });
  $('#udp-simulate-stop').addEventListener('click', async () => {
    await runFor($('#udp-form'), 'stop_simulation', []);
    statsPoll.now();
  });
  ctx.listen('udp_status', () => statsPoll.now());
  window.addEventListener('resize', () => { if (visible) drawChart(); });
  loadSettings().then(() => statsPoll.start());
}

export function show() {
  visible = true;
  if (latestStats) {
    renderCounters(latestStats);
    renderClients(latestStats);
  }
  sessionsAt = 0;
  drawChart();
}

export function hide() { visible = false; }
