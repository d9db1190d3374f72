// Screen 6: instant video replay. OBS status per instance and the big Replay button (F9
// anywhere), the clip of the last challenge with its timeline (PSS events as coloured marks:
// click one to play from there in mpv), the player's controls, the clip archive with search,
// and the settings: OBS instances, replay length, and the trigger table.
//
// Pushes: replay_status (instances and counters), replay_clip (a new clip: it opens by itself),
// replay_player (mpv started or stopped).

import { h, $, setText, runFor, toast, confirmDialog, fmtDateTime } from './ui.js';

let ctx;
let root;
let clips = [];
let current = null;     // the clip shown with its timeline
let status = null;
let config = null;
let triggers = [];

// Mark colour by event category (pss_event_types.category): points, penalties, clock, other.
const MARK_CLASS = {
  points: 'mk-points', hit_level: 'mk-points', current_scores: 'mk-points', scores: 'mk-points',
  warnings: 'mk-penalty', injury: 'mk-penalty', time_out: 'mk-penalty',
  clock: 'mk-clock', round: 'mk-clock', break: 'mk-clock',
  challenge: 'mk-challenge',
};
const LEGEND = [['mk-points', 'Points'], ['mk-penalty', 'Penalties, injuries'], ['mk-clock', 'Clock, round'], ['mk-challenge', 'Challenge'], ['mk-other', 'Other']];

const athletes = (c) => [c.blue?.short_name, c.red?.short_name].filter(Boolean).join(' – ') || '–';
const matchText = (c) => (c.match_id == null ? 'No match' : `Match ${c.match_number ?? `#${c.match_id}`}`);

function field(label, input, name) {
  return h('div', { class: 'field', dataset: { field: name } },
    h('label', { text: label, for: input.id || null }), input, h('span', { class: 'field-error', 'aria-live': 'polite' }));
}

function build() {
  root.replaceChildren(
    h('div', { class: 'grid rp-grid' },
      h('div', { class: 'card' },
        h('h2', { text: 'OBS' }),
        h('ul', { class: 'rp-instances', id: 'rp-instances' }),
        h('p', { class: 'rp-counters muted', id: 'rp-counters' }),
        h('p', { class: 'settings-problem', id: 'rp-error', hidden: true }),
        h('div', { class: 'buttons' },
          h('button', { type: 'button', class: 'btn btn-primary rp-big', id: 'rp-save', text: 'Replay (F9)',
            title: 'Save the replay buffer of every connected OBS now', on: { click: saveNow } }))),
      h('div', { class: 'card' },
        h('h2', { text: 'Player' }),
        h('p', { id: 'rp-player', class: 'muted', text: 'Nothing playing' }),
        h('div', { class: 'buttons rp-controls', id: 'rp-controls' },
          ...[['Pause', 'toggle_pause'], ['◀ Frame', 'frame_back'], ['Frame ▶', 'frame_step'],
            ['0.25×', 'speed', 0.25], ['0.5×', 'speed', 0.5], ['1×', 'speed', 1], ['Stop', 'stop']]
            .map(([text, action, value]) => h('button', { type: 'button', class: 'btn rp-big', text,
              dataset: { action }, on: { click: () => control(action, value) } })))),
      h('div', { class: 'card card-wide', id: 'rp-clip' },
        h('h2', { id: 'rp-clip-title', text: 'No clip yet' }),
        h('p', { class: 'muted', id: 'rp-clip-info' }),
        h('div', { class: 'rp-timeline', id: 'rp-timeline', role: 'group', 'aria-label': 'Events inside the clip' }),
        h('div', { class: 'rp-legend' }, ...LEGEND.map(([cls, text]) => h('span', {}, h('span', { class: `rp-swatch ${cls}` }), text))),
        h('div', { class: 'buttons' },
          h('button', { type: 'button', class: 'btn btn-primary rp-big', id: 'rp-play', text: 'Play', disabled: true,
            on: { click: () => current && play(current.id, null) } }),
          h('button', { type: 'button', class: 'btn btn-danger', id: 'rp-delete', text: 'Delete clip', disabled: true,
            on: { click: deleteCurrent } }))),
      h('div', { class: 'card card-wide' },
        h('h2', { text: 'Clips' }),
        h('form', { class: 'toolbar', id: 'rp-search', on: { submit: (ev) => { ev.preventDefault(); loadClips(); } } },
          h('div', { class: 'inline-field', dataset: { field: 'athlete' } }, h('label', { for: 'rp-athlete', text: 'Athlete' }),
            h('input', { id: 'rp-athlete', type: 'search', maxLength: 100, placeholder: 'name or country' })),
          h('div', { class: 'inline-field', dataset: { field: 'matchId' } }, h('label', { for: 'rp-match', text: 'Match id' }),
            h('input', { id: 'rp-match', inputMode: 'numeric', maxLength: 18 })),
          h('button', { type: 'submit', class: 'btn', text: 'Search' }),
          h('span', { class: 'field-error' })),
        h('div', { class: 'rp-table-wrap' },
          h('table', { class: 'rp-table' },
            h('thead', {}, h('tr', {}, ...['Time', 'Match', 'Athletes', 'Category', 'Court', 'Trigger', 'Camera', 'Events']
              .map((t) => h('th', { scope: 'col', text: t })))),
            h('tbody', { id: 'rp-clips' })),
          h('p', { class: 'empty', id: 'rp-empty', text: 'No clips yet. A challenge or the Replay button saves one.' }))),
      h('details', { class: 'card card-wide', id: 'rp-settings' },
        h('summary', { text: 'Settings: OBS instances and replay' }),
        h('form', { class: 'form', id: 'rp-config', on: { submit: saveConfig } },
          h('div', { id: 'rp-inst-rows', class: 'form' }),
          h('div', { class: 'buttons' }, h('button', { type: 'button', class: 'btn', text: 'Add OBS', on: { click: () => addInstanceRow() } })),
          h('div', { class: 'form-row' },
            field('Replay length (s)', h('input', { id: 'rp-seconds', inputMode: 'numeric' }), 'replay_seconds'),
            field('Play from (s)', h('input', { id: 'rp-start', inputMode: 'decimal' }), 'start_at_seconds'),
            h('label', { class: 'inline-field' }, h('input', { id: 'rp-autoplay', type: 'checkbox' }), 'Play after a challenge')),
          h('div', { class: 'field field-error-only', dataset: { field: 'config' } }, h('span', { class: 'field-error' })),
          h('div', { class: 'buttons' }, h('button', { type: 'submit', class: 'btn btn-primary', text: 'Save and reconnect' })))),
      h('details', { class: 'card card-wide', id: 'rp-triggers' },
        h('summary', { text: 'Triggers: which PSS events save a replay or switch the scene' }),
        h('form', { class: 'form', id: 'rp-trig-form', on: { submit: saveTriggers } },
          h('table', { class: 'rp-table' },
            h('thead', {}, h('tr', {}, ...['PSS code', 'Action', 'Scene', 'Scope', 'At most', 'On', ''].map((t) => h('th', { scope: 'col', text: t })))),
            h('tbody', { id: 'rp-trig-rows' })),
          h('div', { class: 'field field-error-only', dataset: { field: 'triggers' } }, h('span', { class: 'field-error' })),
          h('div', { class: 'buttons' },
            h('button', { type: 'button', class: 'btn', text: 'Add trigger', on: { click: () => addTriggerRow({}) } }),
            h('button', { type: 'submit', class: 'btn btn-primary', text: 'Save triggers' }))))));
}

// ----------------------------------------------------------------------------------- status

function renderStatus(s) {
  status = s;
  if (!s) return;
  const list = $('#rp-instances');
  list.replaceChildren(...(s.instances.length ? s.instances.map((i) => h('li', { class: 'rp-inst' },
    h('span', { class: `pill ${i.connected && i.replay_buffer_active ? 'pill-on' : 'pill-bad'}`,
      text: i.connected ? (i.replay_buffer_active ? 'Ready' : 'No buffer') : 'Offline' }),
    h('strong', { text: i.name }), h('span', { class: 'muted', text: `${i.host}:${i.port}` }),
    i.connected && i.buffer_started_by_restrike ? h('span', { class: 'muted', text: 'replay buffer started by restrike' }) : null,
    i.last_error ? h('span', { class: 'rp-inst-error', text: i.last_error }) : null))
    : [h('li', { class: 'muted', text: 'No OBS configured: add one under Settings below.' })]));
  const c = s.counters;
  setText($('#rp-counters'), `${c.clips} clips · ${c.triggers} triggers · ${c.coalesced} combined with a save in progress · ${c.save_failures} failed saves`);
  const err = $('#rp-error');
  setText(err, s.last_error ?? '');
  err.hidden = !s.last_error;
  $('#rp-save').classList.toggle('busy', Boolean(s.saving));
}

function renderPlayer(p) {
  const text = p?.playing ? `Playing clip ${p.clip_id}${p.position != null ? ` at ${p.position.toFixed(1)} s` : ''}${p.speed && p.speed !== 1 ? ` · ${p.speed}×` : ''}${p.paused ? ' · paused' : ''}`
    : 'Nothing playing';
  setText($('#rp-player'), text);
  for (const b of $('#rp-controls').querySelectorAll('button')) b.disabled = !p?.playing;
}

// ------------------------------------------------------------------------------------ clips

function showClip(clip) {
  current = clip;
  $('#rp-play').disabled = !clip || !clip.file_exists;
  $('#rp-delete').disabled = !clip;
  if (!clip) { setText($('#rp-clip-title'), 'No clip yet'); $('#rp-timeline').replaceChildren(); return; }
  setText($('#rp-clip-title'), `${matchText(clip)} · ${athletes(clip)}`);
  setText($('#rp-clip-info'), [fmtDateTime(clip.created_at), clip.category, clip.court && `court ${clip.court}`,
    `trigger ${clip.trigger}`, clip.instance, `${clip.duration_s.toFixed(1)} s`,
    clip.file_exists ? null : 'the file is missing'].filter(Boolean).join(' · '));
  const span = clip.duration_s * 1000 || 1;
  $('#rp-timeline').replaceChildren(...clip.events.map((m) => h('button', {
    type: 'button', class: `rp-mark ${MARK_CLASS[m.category] ?? 'mk-other'}`,
    title: `${m.raw} · ${(m.offset_ms / 1000).toFixed(1)} s`, 'aria-label': `${m.raw} at ${(m.offset_ms / 1000).toFixed(1)} s`,
    dataset: { offset: String(m.offset_ms), code: m.code },
    on: { click: () => play(clip.id, Math.max(0, m.offset_ms / 1000 - 1)) },
  })));
  // The position along the clip, set through the CSSOM (the CSP forbids style attributes).
  // Events a few ms apart would cover each other: each goes to the first of three lanes where
  // it is clear of the previous mark, so every mark stays clickable.
  const lanes = [-Infinity, -Infinity, -Infinity];
  clip.events.forEach((m, i) => {
    const left = (100 * m.offset_ms) / span;
    let lane = lanes.findIndex((last) => left - last >= 1.5);
    if (lane < 0) lane = lanes.indexOf(Math.min(...lanes));
    lanes[lane] = left;
    const el = $('#rp-timeline').children[i];
    el.style.left = `${left}%`;
    el.classList.add(`rp-lane-${lane}`);
  });
  for (const row of $('#rp-clips').children) row.classList.toggle('row-active', row.dataset.id === String(clip.id));
}

function renderClips() {
  $('#rp-clips').replaceChildren(...clips.map((c) => h('tr', {
    dataset: { id: String(c.id) }, class: c.file_exists ? '' : 'rp-missing', tabIndex: 0,
    on: { click: () => showClip(c), keydown: (ev) => { if (ev.key === 'Enter') showClip(c); } },
  }, h('td', { text: fmtDateTime(c.created_at) }), h('td', { text: matchText(c) }), h('td', { text: athletes(c) }),
  h('td', { text: c.category ?? '–' }), h('td', { text: c.court ?? '–' }), h('td', { text: c.trigger }),
  h('td', { text: c.instance }), h('td', { text: String(c.events.length) }))));
  $('#rp-empty').hidden = clips.length > 0;
}

async function loadClips() {
  const form = $('#rp-search');
  const athlete = $('#rp-athlete').value.trim();
  const match = $('#rp-match').value.trim();
  const args = { limit: 100 };
  if (athlete) args.athlete = athlete;
  if (match) {
    if (!/^\d+$/.test(match)) { toast('Match id: type the number of the match (digits only).'); return; }
    args.matchId = Number(match);
  }
  const list = await runFor(form, 'get_replay_clips', args);
  if (!list) return;
  clips = list;
  renderClips();
  if (!current && clips.length) showClip(clips[0]);
}

function onNewClip(clip) {
  clips = [clip, ...clips.filter((c) => c.id !== clip.id)];
  renderClips();
  showClip(clip);
  ctx.select?.('replay');   // the referee's clip opens by itself
}

async function play(clipId, offset) {
  const args = { clipId };
  if (offset != null) args.offsetSeconds = Math.round(offset * 1000) / 1000;
  const state = await runFor(null, 'replay_play', args);
  if (state) renderPlayer(state);
}

async function control(action, value) {
  const args = value == null ? { action } : { action, value };
  const state = await runFor(null, 'replay_control', args);
  if (state) renderPlayer(state);
}

async function saveNow() {
  const button = $('#rp-save');
  button.disabled = true;
  try {
    const result = await ctx.invoke('replay_save_now');
    if (result.coalesced) toast('A replay was just saved: this moment is in that clip.', 'info');
    else toast(`Replay saved (${result.clips.length} camera${result.clips.length === 1 ? '' : 's'}).`, 'ok', 3000);
    for (const e of result.errors) toast(e);
  } catch (err) {
    toast(`No replay saved: ${err.message}`);
  } finally {
    button.disabled = false;
  }
}

async function deleteCurrent() {
  if (!current) return;
  const ok = await confirmDialog({ title: 'Delete this clip?', message: `The video file of ${matchText(current)} (${fmtDateTime(current.created_at)}) is deleted for good.`, confirmLabel: 'Delete' });
  if (!ok) return;
  const done = await runFor(null, 'replay_delete', { clipId: current.id });
  if (!done) return;
  clips = clips.filter((c) => c.id !== current.id);
  renderClips();
  showClip(clips[0] ?? null);
}

// --------------------------------------------------------------------------------- settings

function addInstanceRow(inst = {}) {
  const n = $('#rp-inst-rows').children.length;
  const row = h('div', { class: 'form-row rp-inst-row' },
    field('Name', h('input', { class: 'i-name', value: inst.name ?? `cam-${n + 1}`, maxLength: 40 }), `config.instances.${n}.name`),
    field('Computer', h('input', { class: 'i-host', value: inst.host ?? '127.0.0.1', maxLength: 253 }), `config.instances.${n}.host`),
    field('Port', h('input', { class: 'i-port', value: String(inst.port ?? 4455), inputMode: 'numeric' }), `config.instances.${n}.port`),
    field('Password', h('input', { class: 'i-password', type: 'password', autocomplete: 'off',
      placeholder: inst.password_set ? 'saved (type to change)' : 'none' }), `config.instances.${n}.password`),
    h('button', { type: 'button', class: 'btn btn-icon', text: 'Remove', on: { click: () => row.remove() } }));
  $('#rp-inst-rows').append(row);
}

function renderConfig(c) {
  config = c;
  $('#rp-inst-rows').replaceChildren();
  for (const inst of c.instances) addInstanceRow(inst);
  $('#rp-seconds').value = String(c.replay_seconds);
  $('#rp-start').value = String(c.start_at_seconds);
  $('#rp-autoplay').checked = c.autoplay;
}

async function saveConfig(ev) {
  ev.preventDefault();
  const form = $('#rp-config');
  const num = (sel, label) => {
    const v = $(sel).value.trim();
    if (!/^\d+(\.\d+)?$/.test(v)) { toast(`${label}: type a number of seconds.`); return null; }
    return Number(v);
  };
  const seconds = num('#rp-seconds', 'Replay length');
  const start = num('#rp-start', 'Play from');
  if (seconds == null || start == null) return;
  const instances = [];
  for (const row of form.querySelectorAll('.rp-inst-row')) {
    const port = row.querySelector('.i-port').value.trim();
    if (!/^\d+$/.test(port)) { toast('Port: type a number from 1 to 65535.'); return; }
    const inst = { name: row.querySelector('.i-name').value.trim(), host: row.querySelector('.i-host').value.trim(), port: Number(port) };
    const pw = row.querySelector('.i-password').value;
    if (pw) inst.password = pw;
    instances.push(inst);
  }
  const saved = await runFor(form, 'obs_update_config', { config: {
    instances, replay_seconds: Math.round(seconds), start_at_seconds: start, autoplay: $('#rp-autoplay').checked } });
  if (saved) { renderConfig(saved); toast('Settings saved: reconnecting to OBS.', 'ok', 3000); }
}

const opts = (values, selected) => values.map(([v, t]) => h('option', { value: v, text: t, selected: v === selected }));

function addTriggerRow(t) {
  const row = h('tr', { class: 'rp-trig-row' },
    h('td', {}, h('input', { class: 't-code', value: t.code ?? '', maxLength: 8, placeholder: 'ch1', 'aria-label': 'PSS code' })),
    h('td', {}, h('select', { class: 't-action', 'aria-label': 'Action' }, ...opts([['save_replay', 'Save replay'], ['switch_scene', 'Switch scene']], t.action ?? 'save_replay'))),
    h('td', {}, h('input', { class: 't-scene', value: t.scene ?? '', maxLength: 100, 'aria-label': 'Scene' })),
    h('td', {}, h('select', { class: 't-scope', 'aria-label': 'Scope' }, ...opts([['always', 'Always'], ['tournament', 'During a tournament'], ['day', 'During a tournament day']], t.scope ?? 'always'))),
    h('td', {}, h('select', { class: 't-throttle', 'aria-label': 'At most' }, ...opts([['none', 'Every time'], ['round', 'Once per round'], ['match', 'Once per match']], t.throttle ?? 'none'))),
    h('td', {}, h('input', { class: 't-enabled', type: 'checkbox', checked: t.enabled ?? true, 'aria-label': 'On' })),
    h('td', {}, h('button', { type: 'button', class: 'btn btn-icon', text: 'Remove', on: { click: () => row.remove() } })));
  $('#rp-trig-rows').append(row);
}

function renderTriggers(list) {
  triggers = list;
  $('#rp-trig-rows').replaceChildren();
  for (const t of list) addTriggerRow(t);
}

async function saveTriggers(ev) {
  ev.preventDefault();
  const rows = [...$('#rp-trig-rows').children].map((row) => {
    const t = { code: row.querySelector('.t-code').value.trim().toLowerCase(), action: row.querySelector('.t-action').value,
      scope: row.querySelector('.t-scope').value, throttle: row.querySelector('.t-throttle').value,
      enabled: row.querySelector('.t-enabled').checked };
    const scene = row.querySelector('.t-scene').value.trim();
    if (scene) t.scene = scene;
    return t;
  });
  const saved = await runFor($('#rp-trig-form'), 'replay_set_triggers', { triggers: rows });
  if (saved) { renderTriggers(saved); toast('Triggers saved.', 'ok', 3000); }
}

// ---------------------------------------------------------------------------------- screen

export function init(c) {
  ctx = c;
  root = $('#panel-replay');
  build();
  renderPlayer(null);
  ctx.listen('replay_status', renderStatus);
  ctx.listen('replay_clip', onNewClip);
  ctx.listen('replay_player', renderPlayer);
  // F9 saves a replay from any screen (manual mode: no feed needed).
  document.addEventListener('keydown', (ev) => {
    if (ev.key === 'F9' && !ev.repeat) { ev.preventDefault(); saveNow(); }
  });
}

export async function load() {
  try {
    const [s, cfg, trig] = await Promise.all([ctx.invoke('obs_get_status'), ctx.invoke('obs_get_config'), ctx.invoke('replay_get_triggers')]);
    renderStatus(s);
    renderPlayer(s.player);
    renderConfig(cfg);
    renderTriggers(trig);
  } catch (err) {
    setText($('#rp-error'), `Instant replay is not available: ${err.message}`);
    $('#rp-error').hidden = false;
    return;
  }
  await loadClips();
}

export function show() { loadClips(); }
