// Screen 4: the database — live pool statistics, archive statistics and the archive operations
// (archive, restore, cleanup, optimize), database information, integrity check and export.
//
// Destructive operations ask first with the in-page dialog. While one runs, archive_progress
// pushes ({operation, done, total, percent}) drive the progress bar. Errors that name a field
// (error.field, camelCase) appear under that field; others in the toast area. Inputs are checked
// (errors.js) before anything runs and before any confirmation is asked.
//
// Export: in the desktop window the operator picks the file with the native "Save as" dialog
// (Choose…, the window's choose_save_file command) or types its path; in a browser the file is
// downloaded (POST /api/download/export_events). Both ways are savefile.js's.
//
// Long operations are jobs on the Python side, one at a time (host/jobs.py): a second one is
// refused with a `conflict` naming the running one. job_progress pushes (and get_job_status when
// the screen opens or an operation was refused) show a job this page did not start - from
// another window, or the one that refused ours - in the same progress line.

import { $, setText, fillDl, runFor, confirmDialog, clearErrors, poller, fmtNumber, fmtBytes,
  fmtDateTime, labelOf, toast, h, showError } from './ui.js';
import { check, describe } from './errors.js';
import { chooseFile, datedName, downloads, saveWith } from './savefile.js';

let ctx;
let poolPoll;
let busy = false;
let ownJob = null;  // the integrity check or export this page is waiting for (own result line)

const POOL_FIELDS = [
  ['in_use', 'In use'], ['idle', 'Idle'], ['available_connections', 'Available'],
  ['max_connections', 'Maximum'], ['requests', 'Requests'], ['requests_waiting', 'Waiting now'],
  ['wait_count', 'Had to wait'], ['timeouts', 'Timeouts'], ['wait_ms_p99', 'Wait p99 (ms)'],
  ['created', 'Opened'], ['recycled', 'Recycled'], ['health_failures', 'Health failures'],
  ['last_cleanup', 'Last cleanup'],
];

// SQLite's WAL checkpoints and flushes (get_database_pool_stats().checkpoint; null on
// PostgreSQL, whose WAL is the server's): what an operator checks when the disk fills or slows.
const CHECKPOINT_FIELDS = [
  ['runs', 'Checkpoints'], ['busy', 'Checkpoints held by readers'],
  ['errors', 'Checkpoint errors'], ['wal_flush_errors', 'WAL flush errors'],
  ['wal_over_bound', 'WAL over its bound'],
];

function checkpointEntries(c) {
  if (!c) return [];
  return [
    ...CHECKPOINT_FIELDS.map(([k, label]) => [label, fmtNumber(c[k]), `checkpoint.${k}`]),
    ['Write-ahead log now', fmtBytes(c.wal_bytes), 'checkpoint.wal_bytes'],
    ['Last checkpoint', fmtDateTime(c.last_at), 'checkpoint.last_at'],
  ];
}

async function refreshPool() {
  let s;
  try { s = await ctx.invoke('get_database_pool_stats'); } catch (err) { setText($('#pool-meter-text'), describe(err)); return; }
  const pct = Number(s.pool_utilization) || 0;
  $('#pool-meter').value = pct;
  setText($('#pool-meter-text'), `${pct.toFixed(0)} % in use`);
  fillDl($('#pool-stats'), [
    ...POOL_FIELDS.filter(([k]) => k in s).map(([k, label]) => [
      label, k === 'last_cleanup' ? fmtDateTime(s[k]) : fmtNumber(s[k]), k]),
    ...checkpointEntries(s.checkpoint),
  ]);
}

async function refreshArchive() {
  let s;
  try { s = await ctx.invoke('get_archive_statistics'); } catch (err) { toast(`Archive statistics: ${describe(err)}`); return; }
  fillDl($('#archive-stats'), [
    ['Archived events', fmtNumber(s.archived_events), 'archived_events'],
    ['Archived details', fmtNumber(s.archived_details), 'archived_details'],
    ['Oldest', fmtDateTime(s.oldest_archived), 'oldest_archived'],
    ['Newest', fmtDateTime(s.newest_archived), 'newest_archived'],
    ['Size', `${fmtBytes(s.archive_size_bytes)}${s.archive_size_method === 'estimate' ? ' (estimate)' : ''}`, 'archive_size_bytes'],
  ]);
}

const ROW_LABELS = {
  pss_events_v2: 'Events', pss_events_v2_archive: 'Archived events', pss_matches: 'Matches',
  udp_server_sessions: 'UDP sessions', tournaments: 'Tournaments',
};

function infoEntries(info) {
  const rows = info?.row_counts ?? {};
  return [
    ['File', info.path ?? '–', 'path'],
    ['Size', fmtBytes(info.size_bytes), 'size_bytes'],
    ['Write-ahead log', fmtBytes(info.wal_size_bytes), 'wal_size_bytes'],
    ['Free pages', `${fmtNumber(info.freelist_count)} of ${fmtNumber(info.page_count)}`, 'freelist_count'],
    ['Journal / sync', `${info.journal_mode ?? '–'} / ${info.synchronous ?? '–'}`, 'journal_mode'],
    ['SQLite / schema', `${info.sqlite_version ?? '–'} / v${info.schema_version ?? '–'}`, 'sqlite_version'],
    ...Object.entries(ROW_LABELS).filter(([t]) => t in rows).map(([t, label]) => [label, fmtNumber(rows[t]), `rows.${t}`]),
  ];
}

async function refreshInfo() {
  try {
    fillDl($('#db-info'), infoEntries(await ctx.invoke('database_get_info')));
  } catch (err) {
    toast(`Database information: ${describe(err)}`);
  }
}

/** Check typed inputs (errors.js); shows the first problem under its field. True if fine. */
function valid(form, command, typed, { required, out = $('#op-result') } = {}) {
  clearErrors(form);
  const problem = check(command, typed, required);
  if (problem) {
    showError(problem, form, command);
    out.className = 'result';
    setText(out, '');  // an older result would read as this attempt's
  }
  return !problem;
}

/** A typed number stays a number; anything else goes as typed so the command names the problem. */
function intOrText(value) {
  const t = String(value).trim();
  return /^-?\d+$/.test(t) ? Number(t) : t;
}

// ------------------------------------------------------------------------------- operations

const OPERATION_NAMES = {
  archive: 'Archiving', archive_old_events: 'Archiving', restore: 'Restoring',
  restore_from_archive: 'Restoring', cleanup: 'Deleting', cleanup_old_archive_data: 'Deleting',
  optimize: 'Optimizing', optimize_archive_tables: 'Optimizing',
  database_run_integrity_check: 'Checking integrity', database_run_vacuum: 'Vacuuming',
  database_run_analyze: 'Analyzing', database_run_optimize: 'Optimizing',
  export_events: 'Exporting',
};

function progressStart(label) {
  $('#op-progress').hidden = false;
  setText($('#op-progress-label'), `${label}…`);
  $('#op-progress-bar').removeAttribute('value');  // indeterminate until the first push
  setText($('#op-progress-text'), '');
  setText($('#op-result'), '');
  $('#op-result').className = 'result';
}

function progressEnd() {
  $('#op-progress').hidden = true;
}

function onProgress(p) {
  if (!busy || !p) return;
  const bar = $('#op-progress-bar');
  bar.value = Math.max(0, Math.min(100, Number(p.percent) || 0));
  const name = OPERATION_NAMES[p.operation] ?? labelOf(p.operation ?? 'working');
  setText($('#op-progress-label'), `${name}…`);
  setText($('#op-progress-text'), p.total ? `${fmtNumber(p.done)} of ${fmtNumber(p.total)} (${Number(p.percent).toFixed(0)} %)` : '');
}

/** A job this page is not driving (job_progress push or get_job_status().running). */
function onJob(s) {
  if (busy || !s || s.name === ownJob) return;
  if (s.finished) {
    progressEnd();
    refreshArchive();
    return;
  }
  $('#op-progress').hidden = false;
  const bar = $('#op-progress-bar');
  if (s.percent == null) bar.removeAttribute('value');
  else bar.value = Math.max(0, Math.min(100, Number(s.percent)));
  const name = OPERATION_NAMES[s.name] ?? labelOf(s.name ?? 'working');
  setText($('#op-progress-label'), `${name} (already running)…`);
  setText($('#op-progress-text'), s.total != null
    ? `${fmtNumber(s.done)} of ${fmtNumber(s.total)} (${Number(s.percent).toFixed(0)} %)`
    : `for ${Number(s.elapsed_s).toFixed(0)} s`);
}

async function showRunningJob() {
  try {
    const s = await ctx.invoke('get_job_status');
    if (s.running) onJob(s.running);
  } catch { /* the progress line is a courtesy; the command's own error was shown */ }
}

function result(text, ok = true) {
  const el = $('#op-result');
  el.className = `result ${ok ? 'result-ok' : 'result-bad'}`;
  setText(el, text);
}

async function operation(form, label, name, args, summary) {
  if (busy) { toast('Another database operation is still running.', 'info'); return; }
  busy = true;
  progressStart(label);
  const started = performance.now();
  let value;
  try {
    value = await runFor(form, name, args);
    if (value !== undefined) {
      result(summary(value, ((performance.now() - started) / 1000).toFixed(1)));
      refreshArchive();
      refreshInfo();
    } else {
      setText($('#op-result'), '');
    }
  } finally {
    busy = false;
    progressEnd();
  }
  if (value === undefined) showRunningJob();  // refused (conflict)? show what runs instead
}

function events(n) {
  return `${fmtNumber(n)} event${n === 1 ? '' : 's'}`;
}

function setupOperations() {
  $('#archive-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const form = ev.currentTarget;
    if (!valid(form, 'archive_old_events', { daysOld: $('#archive-days').value })) return;
    const days = intOrText($('#archive-days').value);
    await operation(form, 'Archiving', 'archive_old_events', { daysOld: days },
      (n) => (n ? `Archived ${events(n)} older than ${days} days.`
        : `Nothing to archive: no event is older than ${days} days.`));
  });
  $('#restore-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const form = ev.currentTarget;
    const startDate = $('#restore-start').value.trim();
    const endDate = $('#restore-end').value.trim();
    if (!valid(form, 'restore_from_archive', { startDate, endDate })) return;
    await operation(form, 'Restoring', 'restore_from_archive', { startDate, endDate },
      (n) => (n ? `Restored ${events(n)} created from ${startDate} to ${endDate} (inclusive).`
        : `Nothing to restore from ${startDate} to ${endDate}.`));
  });
  $('#cleanup-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const form = ev.currentTarget;
    if (!valid(form, 'cleanup_old_archive_data', { daysOld: $('#cleanup-days').value })) return;
    const days = intOrText($('#cleanup-days').value);
    const ok = await confirmDialog({
      title: 'Delete archived events?',
      message: `Archived events older than ${days} days are deleted for good. This cannot be undone.`,
      confirmLabel: 'Delete for good',
    });
    if (!ok) return;
    await operation(form, 'Deleting', 'cleanup_old_archive_data', { daysOld: days },
      (n) => (n ? `Deleted ${events(n)} older than ${days} days from the archive.`
        : `Nothing deleted: no archived event is older than ${days} days.`));
  });
  $('#optimize-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const form = ev.currentTarget;
    const ok = await confirmDialog({
      title: 'Optimize the archive tables?',
      message: 'Incoming events wait while this runs (they are queued, not lost). On a large database it can take a while.',
      confirmLabel: 'Optimize now', danger: false,
    });
    if (!ok) return;
    await operation(form, 'Optimizing', 'optimize_archive_tables', [],
      (_r, seconds) => `Archive tables optimized in ${seconds} s.`);
  });
  $('#archive-stats-refresh').addEventListener('click', refreshArchive);
  $('#db-info-refresh').addEventListener('click', refreshInfo);
  $('#db-integrity').addEventListener('click', async (ev) => {
    const out = $('#db-integrity-result');
    out.className = 'result';
    setText(out, 'Checking…');
    const button = ev.currentTarget;
    button.disabled = true;
    ownJob = 'database_run_integrity_check';
    try {
      const r = await ctx.invoke('database_run_integrity_check');
      const problems = [...(r.problems || []), ...(r.foreign_key_problems || []).map((p) => `foreign key: ${p.table} row ${p.rowid} → ${p.parent}`)];
      out.className = `result ${r.ok ? 'result-ok' : 'result-bad'}`;
      setText(out, r.ok ? `Integrity check passed${r.duration_ms != null ? ` in ${Number(r.duration_ms).toFixed(0)} ms` : ''}: no problem found.`
        : `Integrity check found ${problems.length} problem(s): ${problems.slice(0, 5).join('; ')}`);
    } catch (err) {
      out.className = 'result result-bad';
      setText(out, describe(err, 'database_run_integrity_check'));
    } finally {
      ownJob = null;
      button.disabled = false;
    }
  });
  $('#export-form').addEventListener('submit', exportEvents);
  $('#export-choose').addEventListener('click', chooseExportFile);
  if (downloads()) $('#export-form').classList.add('export-download');
}

/** The native "Save as" dialog (window only): fills the File field. */
function chooseExportFile() {
  return chooseFile($('#export-form'), $('#export-path'), $('#export-overwrite'),
    datedName('events', $('#export-format').value));
}

async function exportEvents(ev) {
  ev.preventDefault();
  const form = ev.currentTarget;
  const since = $('#export-start').value.trim();
  const until = $('#export-end').value.trim();
  const path = $('#export-path').value.trim();
  const typed = downloads() ? { since, until } : { since, until, path };
  if (!valid(form, 'export_events', typed, { required: ['path'], out: $('#export-result') })) return;
  const filters = {};
  const match = $('#export-match').value;
  if (match) filters.matchId = Number(match);
  if (since) filters.since = since;
  if (until) filters.until = nextDayIfDate(until);  // "To" includes the day typed
  const format = $('#export-format').value;
  const out = $('#export-result');
  setText(out, 'Exporting…');
  out.className = 'result';
  ownJob = 'export_events';
  const r = await saveWith(form, 'export_events', { filters, format }, {
    path, overwrite: $('#export-overwrite').checked, filename: datedName('events', format),
  }).finally(() => { ownJob = null; });
  if (r === undefined) { setText(out, ''); return; }
  out.className = 'result result-ok';
  setText(out, `Exported ${events(r.rows)} to ${r.path}.`);
}

/** "2026-11-28" -> "2026-11-29" (the export's until is exclusive); other text unchanged. */
function nextDayIfDate(text) {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(text);
  if (!m) return text;
  const d = new Date(Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3])));
  if (Number.isNaN(d.getTime())) return text;
  d.setUTCDate(d.getUTCDate() + 1);
  return d.toISOString().slice(0, 10);
}

function fillMatches(rows) {
  const select = $('#export-match');
  const keep = select.value;
  select.replaceChildren(h('option', { value: '', text: 'All matches' }),
    ...rows.map((m) => h('option', { value: String(m.id ?? m.match_id), text: `#${m.match_number ?? m.id}${m.blue?.short_name ? ` ${m.blue.short_name} vs ${m.red?.short_name ?? '?'}` : ''}` })));
  select.value = [...select.options].some((o) => o.value === keep) ? keep : '';
}

export function init(c) {
  ctx = c;
  poolPoll = poller(refreshPool, 1000);
  ctx.listen('archive_progress', onProgress);
  ctx.listen('job_progress', onJob);
  ctx.bus.on('matches', fillMatches);
  setupOperations();
}

export function show() {
  poolPoll.start();
  refreshArchive();
  refreshInfo();
  showRunningJob();
}

export function hide() { poolPoll.stop(); }
